"""timm backbones with a new head, wrapped in transformers' ``TimmWrapperForImageClassification``.

The wrapper gives the Trainer what it expects (``pixel_values``/``labels`` in, ``loss``/``logits`` out) while the timm
model inside stays untouched: every timm tool (``group_matcher``, ``reset_classifier``, data config) still applies.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from accelerate import init_empty_weights
from torch import nn
from transformers import TimmWrapperConfig, TimmWrapperForImageClassification

from ..config import BUILTIN_PREFIX, IMAGE_CLASSIFICATION, SINGLE_LABEL, ModelArguments
from ..exceptions import ConfigError
from .blocks import BlockView, timm_block_view
from .builtin import builtin_checkpoint_dir, list_builtin_models
from .checkpoints import load_bare_checkpoint
from .references import ModelSource, resolve_image_source


def create_timm_model(
    source: ModelSource,
    num_classes: int | None,
    pretrained: bool,
    allow_partial_checkpoint: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """``timm.create_model`` with the head sized for ``num_classes`` (timm drops a mismatched pretrained head).

    ``num_classes=None`` keeps the checkpoint's own head. A bare checkpoint file is loaded here, strictly: every
    backbone weight must come from it (a known foreign layout is converted first), else one-line ``ConfigError`` —
    never a silently random network. The load report is kept on the model as ``checkpoint_load_report``."""
    name = source.timm_name
    if name.startswith(BUILTIN_PREFIX):
        name = f"local-dir:{builtin_checkpoint_dir(name)}"
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if source.checkpoint_file:
        model = timm.create_model(name, pretrained=False, **kwargs)
        if pretrained:
            head = classifier_prefix(model)
            model.checkpoint_load_report = load_bare_checkpoint(
                model, source.checkpoint_file, (head,) if head else (), allow_partial=allow_partial_checkpoint
            )
        return model
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError) as err:
        if pretrained and ("offline" in str(err).lower() or "connect" in str(err).lower()):
            builtins = ", ".join(list_builtin_models(IMAGE_CLASSIFICATION))
            raise ConfigError(
                f"Could not fetch pretrained weights for {source.reference!r} (no network?). Offline, use a local "
                f"directory, a checkpoint file or a built-in: {builtins}."
            ) from err
        raise


def classifier_prefix(model: nn.Module) -> str | None:
    """The parameter-name prefix of a timm model's classifier (``"classifier."``, ``"head."``, ``"fc."``)."""
    classifier = model.get_classifier()
    name = next((n for n, m in model.named_modules() if m is classifier), None)
    return f"{name}." if name else None


def build_image_model(
    args: ModelArguments,
    label_names: list[str],
    source: ModelSource | None = None,
    problem_type: str = SINGLE_LABEL,
) -> tuple[TimmWrapperForImageClassification, BlockView]:
    """Pretrained (or, with ``from_scratch``, randomly initialised) backbone + a new head with one output per name in
    ``label_names`` (a regression model: one, named after its target); ``problem_type`` chooses the loss."""
    source = source or resolve_image_source(args)
    timm_model = create_timm_model(
        source,
        num_classes=len(label_names),
        pretrained=not args.from_scratch,
        drop_rate=args.drop_rate,
        drop_path_rate=args.drop_path_rate,
        cache_dir=args.cache_dir,
        allow_partial_checkpoint=args.allow_partial_checkpoint,
    )
    zero_init_head(timm_model)
    wrapper = wrap_timm_model(timm_model, label_names, problem_type)
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


def wrap_timm_model(
    timm_model: nn.Module, label_names: list[str], problem_type: str = SINGLE_LABEL
) -> TimmWrapperForImageClassification:
    """Put an existing timm model inside transformers' wrapper without building (and discarding) a second copy.

    The wrapper computes its loss from ``config.problem_type`` (transformers' ``loss_function``): cross-entropy,
    BCE-with-logits for multi-label, MSE for regression."""
    config = TimmWrapperConfig(
        architecture=timm_model.pretrained_cfg.get("architecture") or type(timm_model).__name__,
        num_labels=len(label_names),
        problem_type=problem_type,
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
