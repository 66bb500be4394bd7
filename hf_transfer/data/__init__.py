"""Datasets in, model-ready batches out."""

from .builtin import builtin_dataset_dir, list_builtin_datasets
from .loading import load_image_data, verify_images
from .multimodal import (
    MultimodalCollator,
    load_multimodal_data,
    multimodal_transform_fn,
    tokenize_multimodal,
)
from .splits import LabelledData
from .text import load_text_data
from .transforms import (
    build_image_transforms,
    collate_image_batch,
    image_transform_fn,
    resolve_image_data_config,
    to_model_mode,
)

__all__ = [
    "LabelledData",
    "MultimodalCollator",
    "build_image_transforms",
    "builtin_dataset_dir",
    "collate_image_batch",
    "image_transform_fn",
    "list_builtin_datasets",
    "load_image_data",
    "load_multimodal_data",
    "load_text_data",
    "multimodal_transform_fn",
    "resolve_image_data_config",
    "to_model_mode",
    "tokenize_multimodal",
    "verify_images",
]
