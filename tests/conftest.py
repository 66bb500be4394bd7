"""Shared fixtures. Everything runs offline: failed Hub calls must fail at once, not retry for a minute."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def make_image(colour: tuple[int, int, int], seed: int, size: int = 24, mode: str = "RGB") -> Image.Image:
    """A solid-colour square with a little noise: trivially learnable, so tiny runs show real learning."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB").convert(mode)


def write_imagefolder(root: Path, per_class: int = 8, classes: tuple[str, ...] = ("red", "green", "blue")) -> Path:
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            make_image(COLOURS[name], seed=100 * c + i).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "colours")


@pytest.fixture
def csv_dataset(tmp_path: Path) -> Path:
    """A csv with relative image paths and string labels, as a user's own annotations would be."""
    images = tmp_path / "images"
    images.mkdir()
    rows = ["file,category"]
    for c, name in enumerate(COLOURS):
        for i in range(6):
            make_image(COLOURS[name], seed=10 * c + i).save(images / f"{name}_{i}.png")
            rows.append(f"images/{name}_{i}.png,{name}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


REPO = Path(__file__).resolve().parent.parent


def run_command(args: list[str], timeout: int = 600, **env: str):
    """Run a command from the repository root with the test environment; output is kept for assertion messages."""
    import subprocess
    import sys

    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    executable = args[0]
    if executable in ("accelerate", "hf-transfer"):
        args = [str(Path(sys.executable).parent / executable), *args[1:]]
    elif executable == "python":
        args = [sys.executable, *args[1:]]
    return subprocess.run(args, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)
