"""Datasets in, model-ready batches out."""

from .builtin import builtin_dataset_dir, list_builtin_datasets
from .loading import ImageData, load_image_data, verify_images
from .transforms import (
    build_image_transforms,
    collate_image_batch,
    image_transform_fn,
    resolve_image_data_config,
    to_model_mode,
)

__all__ = [
    "ImageData",
    "build_image_transforms",
    "builtin_dataset_dir",
    "collate_image_batch",
    "image_transform_fn",
    "list_builtin_datasets",
    "load_image_data",
    "resolve_image_data_config",
    "to_model_mode",
    "verify_images",
]
