"""Image transforms derived from the checkpoint's own pretrained data config, applied lazily with ``with_transform``.

Using the model's ``mean``/``std``/interpolation/crop (``timm.data.resolve_data_config``) instead of hand-written
ImageNet constants matters: e.g. TF-ported EfficientNets expect inputs normalised with mean = std = 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from torch import nn

from ..config import DataArguments


def resolve_image_data_config(timm_model: nn.Module, image_size: int | None = None) -> dict[str, Any]:
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=timm_model)
    if image_size is not None:
        config["input_size"] = (config["input_size"][0], image_size, image_size)
    return config


def jsonable_data_config(data_config: dict[str, Any]) -> dict[str, Any]:
    """A timm data config as JSON keeps it (tuples become lists): saved in configs and provenance."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()}


def build_image_transforms(data_config: dict[str, Any], args: DataArguments) -> tuple[Callable, Callable]:
    """(train, eval) torchvision transforms; training adds RandomResizedCrop/flip/jitter unless ``--no_augment``."""
    from timm.data import create_transform

    eval_tf = create_transform(**data_config, is_training=False)
    if args.no_augment:
        return eval_tf, eval_tf
    train_config = {k: v for k, v in data_config.items() if k not in ("crop_pct", "crop_mode")}
    train_tf = create_transform(**train_config, is_training=True, hflip=args.hflip, scale=(args.crop_scale_min, 1.0))
    return train_tf, eval_tf


def to_model_mode(image: Image.Image, channels: int = 3) -> Image.Image:
    """Greyscale, RGBA, palette, CMYK or 16-bit images become what the model takes (RGB, or L for 1 channel)."""
    target = "L" if channels == 1 else "RGB"
    if image.mode == target:
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")  # composite on white: transparent pixels otherwise turn black
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    elif image.mode.startswith("I"):  # 16/32-bit greyscale: rescale to 8 bits rather than clip
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1.0)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8), mode="L")
    return image.convert(target)


def image_transform_fn(transform: Callable, image_column: str, label_column: str, channels: int = 3) -> Callable:
    """A batched function for ``Dataset.with_transform``: images → ``pixel_values``, labels → ``labels``."""

    def apply(batch: dict[str, list]) -> dict[str, list]:
        out = {"pixel_values": [transform(to_model_mode(image, channels)) for image in batch[image_column]]}
        if label_column in batch:
            out["labels"] = batch[label_column]
        return out

    return apply


def collate_image_batch(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Class ids stay integers (cross-entropy); multi-hot vectors and regression targets become floats (BCE, MSE)."""
    batch = {"pixel_values": torch.stack([example["pixel_values"] for example in examples])}
    if "labels" in examples[0]:
        labels = [example["labels"] for example in examples]
        batch["labels"] = torch.tensor(labels, dtype=torch.long if isinstance(labels[0], int) else torch.float32)
    return batch
