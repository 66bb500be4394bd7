"""Native-format export, model cards, and pushing finished runs to the Hub."""

from .artifacts import IncompleteRunError, RunArtifacts, inspect_run
from .card_writer import render_model_card, write_model_card
from .export import save_fusion_model, save_timm_model
from .push import HubPushSettings, PushError, PushResult, push_to_hub

__all__ = [
    "HubPushSettings",
    "IncompleteRunError",
    "PushError",
    "PushResult",
    "RunArtifacts",
    "inspect_run",
    "push_to_hub",
    "render_model_card",
    "save_fusion_model",
    "save_timm_model",
    "write_model_card",
]
