"""PEFT adapters through ``peft``: ``lora`` and ``ia3``, with per-family target-module presets.

The backbone stays frozen (batch-norm statistics included: the adapter directory does not store them, so they must
not drift); the adapter and the new head train, and the output is a real peft adapter directory whose config records
the real base model reference. ``--merge_adapter`` also writes the merged model, in the task's native format.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import StrategyContext, TransferStrategy, freeze_batchnorm_statistics, modules_owning
from .registry import register_strategy
from .settings import Setting, positive, probability_below_one

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    from torch import nn

logger = logging.getLogger(__name__)

TARGET_MODULES = Setting(
    "lora_target_modules",
    str,
    None,
    "comma-separated module names to adapt",
    default_text="the backbone family's preset",
)
MERGE_ADAPTER = Setting("merge_adapter", bool, False, "also write the adapter merged into the base, in merged/")

_ADAPTER_CONFLICTS = {
    "l2sp": "the adapter leaves the pretrained weights untouched, so ||w - w0|| is always zero",
    "wise_ft": "interpolating towards the base is scaling the adapter; merge it and interpolate the merged model",
    "lwf": "not supported with adapters yet",
}


def module_names(model: nn.Module, kind: type | tuple[type, ...]) -> set[str]:
    return {name for name, module in model.named_modules() if isinstance(module, kind)}


def preset_target_modules(model: nn.Module, method: str) -> tuple[list[str], list[str]]:
    """(target modules, feed-forward modules) for the backbone family, recognised by its module names."""
    from torch import nn

    linear = {name.rsplit(".", 1)[-1] for name in module_names(model, nn.Linear)}
    conv = {name.rsplit(".", 1)[-1] for name in module_names(model, nn.Conv2d)}
    if "qkv" in linear:  # timm ViT / DeiT / EVA: fused attention projection
        return (["qkv"], []) if method == "lora" else (["qkv", "fc2"], ["fc2"])
    if {"query", "value"} <= linear:  # BERT family
        return (["query", "value"], []) if method == "lora" else (["key", "value", "output.dense"], ["output.dense"])
    if {"conv_pw", "conv_pwl"} <= conv:  # timm EfficientNet / MobileNet: pointwise convolutions
        return (["conv_pw", "conv_pwl"], []) if method == "lora" else (["conv_pwl"], ["conv_pwl"])
    if {"fc1", "fc2"} <= linear:  # MLP blocks (ConvNeXt, MLP-Mixer, ...)
        return (["fc1", "fc2"], []) if method == "lora" else (["fc1", "fc2"], ["fc2"])
    raise ConfigError(f"No {method} target-module preset for {type(model).__name__}; pass --lora_target_modules.")


class PeftAdapter(TransferStrategy):
    method = ""
    incompatible = _ADAPTER_CONFLICTS

    def target_modules(self, model: nn.Module) -> tuple[list[str], list[str]]:
        targets, feedforward = preset_target_modules(model, self.method)
        if self.setting("lora_target_modules"):
            targets = [t.strip() for t in self.setting("lora_target_modules").split(",") if t.strip()]
            feedforward = [t for t in feedforward if t in targets]
        return targets, feedforward

    def peft_config(self, model: nn.Module, context: StrategyContext):
        raise NotImplementedError

    def apply(self, context: StrategyContext) -> None:
        from torch import nn

        view = context.view
        # the head trains; peft freezes the rest when it wraps the model
        freeze_batchnorm_statistics(nn.ModuleList(modules_owning(view.model, set(view.body()))))

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        from peft import get_peft_model

        config = self.peft_config(model, context)
        peft_model = get_peft_model(model, config)
        # the real base reference, not None: AutoPeftModel would otherwise go to the Hub for a base it cannot name
        peft_model.peft_config["default"].base_model_name_or_path = context.base_model_reference
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in peft_model.parameters())
        logger.info(
            "%s adapter on %s: %s of %s parameters trainable", self.name, config.target_modules, trainable, total
        )
        return peft_model

    def head_modules(self, context: StrategyContext) -> list[str]:
        return sorted({name.rsplit(".", 1)[0] for name in context.view.head})

    def save(self, model: nn.Module, output_dir: str, context: StrategyContext) -> bool:
        model.save_pretrained(output_dir)  # adapter_config.json + adapter_model.safetensors
        if self.setting("merge_adapter"):
            merged = model.merge_and_unload()
            context.save_native(merged, os.path.join(output_dir, "merged"))
        return True


@register_strategy("lora")
class LoRA(PeftAdapter):
    """Low-rank adapters (Hu et al., 2021) on the attention / pointwise projections; the head trains in full."""

    method = "lora"
    default_learning_rate = 1e-3
    summary = (
        "peft LoRA adapters + the head (`modules_to_save`); presets: timm ViT `qkv`, timm EfficientNet/MobileNet "
        "`conv_pw`/`conv_pwl`, BERT `query`/`value`; output: a peft adapter directory whose config records the real "
        "base"
    )
    settings = (
        Setting("lora_r", int, 8, "adapter rank", check=positive),
        Setting("lora_alpha", float, None, "scaling alpha", default_text="2r"),
        Setting("lora_dropout", float, 0.0, "dropout on the adapter input", check=probability_below_one),
        TARGET_MODULES,
        MERGE_ADAPTER,
    )

    def peft_config(self, model: nn.Module, context: StrategyContext):
        from peft import LoraConfig

        r = int(self.setting("lora_r"))
        targets, _ = self.target_modules(model)
        alpha = self.setting("lora_alpha")
        return LoraConfig(
            r=r,
            lora_alpha=float(alpha if alpha is not None else 2 * r),
            lora_dropout=float(self.setting("lora_dropout")),
            target_modules=targets,
            modules_to_save=self.head_modules(context),
        )


@register_strategy("ia3")
class IA3(PeftAdapter):
    """(IA)^3 (Liu et al., 2022): learned rescaling vectors on keys, values and feed-forward inputs; tiny and fast."""

    method = "ia3"
    default_learning_rate = 3e-3
    summary = "peft (IA)³ scaling vectors + the head"
    settings = (TARGET_MODULES, MERGE_ADAPTER)

    def peft_config(self, model: nn.Module, context: StrategyContext):
        from peft import IA3Config

        targets, feedforward = self.target_modules(model)
        return IA3Config(
            target_modules=targets, feedforward_modules=feedforward, modules_to_save=self.head_modules(context)
        )
