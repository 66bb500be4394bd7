"""Save fine-tuned models in their library's native format.

A timm model is saved the way timm publishes to the Hub (``config.json`` with ``architecture``, ``num_classes``,
``label_names`` and ``pretrained_cfg``; ``model.safetensors`` with timm's own key names), so that
``timm.create_model("local-dir:DIR")`` and transformers' ``AutoModelForImageClassification`` both load it, label names
included, with no hf_transfer installed. The root ``problem_type`` (which timm ignores) tells transformers'
``TimmWrapperConfig`` and so ``pipeline("image-classification")`` how to score the outputs: a sigmoid per label for a
multi-label model, the raw value for regression, a softmax otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from ..config import SINGLE_LABEL
from ..models.vision import clean_pretrained_cfg

_DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def save_timm_model(
    timm_model: nn.Module,
    output_dir: str | Path,
    label_names: list[str],
    data_config: dict[str, Any] | None = None,
    problem_type: str = SINGLE_LABEL,
) -> Path:
    """Write a timm-format checkpoint; the saved ``pretrained_cfg`` describes the preprocessing it was trained with.

    ``label_names`` names every output (a regression model's one output: its target column)."""
    from timm.models import save_for_hf

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    pretrained_cfg = clean_pretrained_cfg(dict(timm_model.pretrained_cfg))
    for key in _DATA_CONFIG_KEYS:
        if data_config and key in data_config:
            value = data_config[key]
            pretrained_cfg[key] = list(value) if isinstance(value, tuple) else value
    pretrained_cfg["num_classes"] = len(label_names)
    pretrained_cfg.pop("hf_hub_id", None)  # it points at the *source* checkpoint, not at this one
    pretrained_cfg.pop("tag", None)
    timm_model.pretrained_cfg = pretrained_cfg
    save_for_hf(timm_model, str(output_dir), model_config={"label_names": list(label_names)}, safe_serialization=True)
    _make_loadable_by_transformers(output_dir / "config.json", problem_type)
    return output_dir


def _make_loadable_by_transformers(config_path: Path, problem_type: str) -> None:
    """Record ``problem_type`` at the root, and keep ``num_classes`` only there.

    timm >= 1.0.31 also records ``num_classes`` in ``model_args``; transformers' ``TimmWrapper`` passes ``model_args``
    *and* ``num_classes=num_labels`` to ``timm.create_model`` and fails with "got multiple values for keyword argument
    'num_classes'". timm itself reads the root value, so the file then serves both loaders.
    """
    config = json.loads(config_path.read_text())
    config["problem_type"] = problem_type
    model_args = config.get("model_args")
    if isinstance(model_args, dict) and "num_classes" in model_args:
        model_args.pop("num_classes")
        if not model_args:
            config.pop("model_args")
    config_path.write_text(json.dumps(config, indent=2))


def save_fusion_model(model: nn.Module, output_dir: str | Path) -> None:
    """One ``config.json`` + one safetensors file; adapters (LoRA, IA3) are merged into their towers first, so the
    saved model has exactly the structure its config describes."""
    from peft import PeftModel

    for modality in model.config.modalities:
        tower = getattr(model, f"{modality}_tower")
        if isinstance(tower, PeftModel):
            setattr(model, f"{modality}_tower", tower.merge_and_unload())
    model.save_pretrained(output_dir)
