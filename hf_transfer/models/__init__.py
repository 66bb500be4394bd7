"""Backbones with new heads, and the uniform block view strategies act on."""

from .blocks import BlockView, timm_block_view
from .builtin import builtin_checkpoint_dir, list_builtin_models
from .references import ModelSource, TextModelSource, resolve_image_source, resolve_text_source
from .vision import build_image_model, image_block_view, wrap_timm_model

__all__ = [
    "BlockView",
    "ModelSource",
    "TextModelSource",
    "build_image_model",
    "builtin_checkpoint_dir",
    "image_block_view",
    "list_builtin_models",
    "resolve_image_source",
    "resolve_text_source",
    "timm_block_view",
    "wrap_timm_model",
]
