"""Native-format export (and, later, Hub push/pull)."""

from .export import read_label_names, save_timm_model

__all__ = ["read_label_names", "save_timm_model"]
