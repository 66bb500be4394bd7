"""timm backbones with a new head, wrapped in transformers' ``TimmWrapperForImageClassification``.

The wrapper gives the Trainer what it expects (``pixel_values``/``labels`` in, ``loss``/``logits`` out) while the timm
model inside stays untouched: every timm tool (``group_matcher``, ``reset_classifier``, data config) still applies.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any

import timm
import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from ..config import DEFAULT_IMAGE_MODEL, ModelArguments
from ..exceptions import ConfigError
from .blocks import BlockView, timm_block_view
from .builtin import BUILTIN_PREFIX, builtin_checkpoint_dir, list_builtin_models

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass
class ModelSource:
    """Where a checkpoint comes from, resolved to something ``timm.create_model`` understands."""

    timm_name: str  # a registered name, 'hf-hub:...' or 'local-dir:...'
    checkpoint_file: str | None = None  # a bare weights file, loaded via pretrained_cfg_overlay
    reference: str = ""  # what the user asked for, recorded in the saved config / model card


def resolve_model_source(args: ModelArguments) -> ModelSource:
    """Turn ``--model_name_or_path`` into a timm source, failing fast (with close names) if it cannot be one."""
    name = args.model_name_or_path or DEFAULT_IMAGE_MODEL
    if name.startswith(BUILTIN_PREFIX):
        available = list_builtin_models("image-classification")
        if name not in available:
            raise ConfigError(f"--model_name_or_path: no built-in image checkpoint {name!r}; available: {available}.")
        return ModelSource(timm_name=name, reference=name)  # materialised lazily, in build_image_model
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise ConfigError(f"--model_name_or_path: directory {name!r} has no config.json (timm format expected).")
        return ModelSource(timm_name=f"local-dir:{os.path.abspath(name)}", reference=os.path.abspath(name))
    if os.path.isfile(name):
        if not name.endswith(CHECKPOINT_SUFFIXES):
            raise ConfigError(
                f"--model_name_or_path: {name!r} is not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})."
            )
        if not args.architecture:
            raise ConfigError(f"--model_name_or_path {name!r} is a bare checkpoint: also pass --architecture NAME.")
        _check_timm_name(args.architecture, flag="--architecture")
        return ModelSource(timm_name=args.architecture, checkpoint_file=os.path.abspath(name), reference=name)
    if name.startswith("local-dir:"):
        return ModelSource(timm_name=name, reference=name)
    if "/" in name:
        if name.endswith(CHECKPOINT_SUFFIXES) or name.startswith((".", "/")):
            raise ConfigError(f"--model_name_or_path: file or directory {name!r} does not exist.")
        name = f"hf-hub:{name}"
    if name.startswith("hf-hub:"):
        if args.model_revision != "main" and "@" not in name:
            name = f"{name}@{args.model_revision}"  # timm's syntax for a Hub revision
        return ModelSource(timm_name=name, reference=args.model_name_or_path)
    if args.model_revision != "main":
        raise ConfigError(f"--model_revision applies to Hub checkpoints only, not to {name!r}.")
    _check_timm_name(name, flag="--model_name_or_path")
    return ModelSource(timm_name=name, reference=name)


def _check_timm_name(name: str, flag: str) -> None:
    if timm.is_model(name):
        return
    candidates = timm.list_models() + list_builtin_models("image-classification")
    close = difflib.get_close_matches(name.split(".")[0], candidates, n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise ConfigError(
        f"{flag}: {name!r} is not a timm model, a Hub id (org/name), a directory or a checkpoint file.{hint}"
    )


def create_timm_model(source: ModelSource, num_classes: int | None, pretrained: bool, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` with the head sized for ``num_classes`` (timm drops a mismatched pretrained head).

    ``num_classes=None`` keeps the checkpoint's own head."""
    name = source.timm_name
    if name.startswith(BUILTIN_PREFIX):
        name = f"local-dir:{builtin_checkpoint_dir(name)}"
    if source.checkpoint_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=source.checkpoint_file)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    try:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as err:
        if pretrained and ("offline" in str(err).lower() or "connect" in str(err).lower()):
            builtins = ", ".join(list_builtin_models("image-classification"))
            raise ConfigError(
                f"Could not fetch pretrained weights for {source.reference!r} (no network?). Offline, use a local "
                f"directory, a checkpoint file or a built-in: {builtins}."
            ) from err
        raise


def build_image_model(
    args: ModelArguments, label_names: list[str], source: ModelSource | None = None
) -> tuple[TimmWrapperForImageClassification, BlockView]:
    """Pretrained (or, with ``from_scratch``, randomly initialised) backbone + a new head for ``label_names``."""
    source = source or resolve_model_source(args)
    timm_model = create_timm_model(
        source,
        num_classes=len(label_names),
        pretrained=not args.from_scratch,
        drop_rate=args.drop_rate,
        drop_path_rate=args.drop_path_rate,
        cache_dir=args.cache_dir,
    )
    zero_init_head(timm_model)
    wrapper = wrap_timm_model(timm_model, label_names)
    return wrapper, image_block_view(wrapper)


@torch.no_grad()
def zero_init_head(timm_model: nn.Module) -> None:
    """Start the new head at zero (as BiT does): the first steps then cannot wreck the pretrained body.

    Some timm inits (e.g. EfficientNet's fan-out uniform) give a 10-class head logits of magnitude ~10 on pretrained
    features, a loss of ~8 and large, destructive early gradients.
    """
    for module in timm_model.get_classifier().modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.zeros_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def wrap_timm_model(timm_model: nn.Module, label_names: list[str]) -> TimmWrapperForImageClassification:
    """Put an existing timm model inside transformers' wrapper without building (and discarding) a second copy."""
    config = TimmWrapperConfig(
        architecture=timm_model.pretrained_cfg.get("architecture") or type(timm_model).__name__,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        pretrained_cfg=clean_pretrained_cfg(timm_model.pretrained_cfg),
        num_features=getattr(timm_model, "num_features", None),
    )
    with init_empty_weights():
        wrapper = TimmWrapperForImageClassification(config)
    wrapper.timm_model = timm_model
    return wrapper


def image_block_view(wrapper: TimmWrapperForImageClassification) -> BlockView:
    view = timm_block_view(wrapper, wrapper.timm_model, prefix="timm_model.")
    view.check_complete()
    return view


def clean_pretrained_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    """Drop machine-local entries (cache paths, URLs of the source weights) before a config is saved or shared."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items() if k not in ("file", "source", "url")}


def count_parameters(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
