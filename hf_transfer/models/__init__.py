"""Backbones with new heads, and the uniform block view strategies act on."""

from .blocks import BlockView, timm_block_view
from .builtin import builtin_checkpoint_dir, list_builtin_models
from .vision import build_image_model, image_block_view, resolve_model_source, wrap_timm_model

__all__ = [
    "BlockView",
    "build_image_model",
    "builtin_checkpoint_dir",
    "image_block_view",
    "list_builtin_models",
    "resolve_model_source",
    "timm_block_view",
    "wrap_timm_model",
]
