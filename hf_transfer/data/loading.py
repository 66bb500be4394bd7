"""Load a labelled image dataset through ``datasets``: Hub name, imagefolder, or csv/json/parquet with image paths.

Whatever the source, the result is the same: train and validation splits with a ``ClassLabel`` label column and the
label names, checked for the mistakes that otherwise surface hours later (missing column, one class, empty split, a
corrupt file).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict
from datasets import Image as ImageFeature

from ..config import DataArguments
from ..exceptions import DataError
from .builtin import BUILTIN_PREFIX, builtin_dataset_dir, resolve_data_presets
from .labels import VALIDATION_SPLIT_NAMES, check_columns, encode_class_labels, limit_samples, stratified_split

logger = logging.getLogger(__name__)


@dataclass
class ImageData:
    train: Dataset
    validation: Dataset
    label_names: list[str]
    image_column: str
    label_column: str
    skipped_images: dict[str, int] = field(default_factory=dict)
    source: str = ""


def load_image_data(args: DataArguments, seed: int = 42) -> ImageData:
    resolve_data_presets(args, "image-classification")
    raw, source = _load_raw(args)
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    columns = {"--image_column_name": args.image_column_name, "--label_column_name": args.label_column_name}
    check_columns(train, columns, "train")
    if validation is not None:
        check_columns(validation, columns, "validation")
    train, validation, label_names, skipped = finish_labelled_image_splits(train, validation, args, seed, source)
    return ImageData(train, validation, label_names, args.image_column_name, args.label_column_name, skipped, source)


def finish_labelled_image_splits(
    train: Dataset, validation: Dataset | None, args: DataArguments, seed: int, source: str
) -> tuple[Dataset, Dataset, list[str], dict[str, int]]:
    """Checked columns in, ready splits out: class labels encoded (and aligned across splits), a seeded stratified
    hold-out when there is no validation split, the sample limits, every image decoded once, no empty split.
    Returns (train, validation, label names, skipped images per split)."""
    label = args.label_column_name
    train, validation, label_names = encode_class_labels(train, validation, label)
    if validation is None:
        train, validation = stratified_split(train, args.train_val_split, label, seed)
    train, validation = limit_samples(train, validation, args.max_train_samples, args.max_eval_samples, seed)
    skipped: dict[str, int] = {}
    if args.verify_images:
        train, skipped["train"] = verify_images(train, args, "train")
        validation, skipped["validation"] = verify_images(validation, args, "validation")
    for split_name, split in (("train", train), ("validation", validation)):
        if len(split) == 0:
            raise DataError(
                f"The {split_name} split of {source} is empty after filtering; nothing to train/evaluate on."
            )
    return train, validation, label_names, skipped


def _load_raw(
    args: DataArguments, folder_loader: Callable[[str, str], Dataset] | None = None
) -> tuple[DatasetDict, str]:
    """The raw splits of any source. ``folder_loader(path, flag)`` reads a directory (default: a class imagefolder);
    a built-in that ships ``train.csv`` (and maybe ``test.csv``) of image paths is read as tables instead."""
    folder_loader = folder_loader or _load_imagefolder
    dataset_name = args.dataset_name
    if dataset_name and dataset_name.startswith(BUILTIN_PREFIX):
        folder = builtin_dataset_dir(dataset_name)
        if (folder / "train.csv").is_file():
            tables = {split: folder / f"{split}.csv" for split in ("train", *VALIDATION_SPLIT_NAMES)}
            splits = {split: _load_table(str(p), args, "--dataset_name") for split, p in tables.items() if p.is_file()}
            return DatasetDict(splits), dataset_name
        return DatasetDict(train=folder_loader(str(folder), "--dataset_name")), dataset_name
    if dataset_name:
        loaded = datasets.load_dataset(dataset_name, args.dataset_config_name)
        if "train" not in loaded:
            raise DataError(f"Dataset {dataset_name!r} has no 'train' split; it has {list(loaded)}.")
        return loaded, dataset_name
    if args.train_dir:
        splits = {"train": folder_loader(args.train_dir, "--train_dir")}
        if args.validation_dir:
            splits["validation"] = folder_loader(args.validation_dir, "--validation_dir")
        return DatasetDict(splits), args.train_dir
    splits = {"train": _load_table(args.train_file, args, "--train_file")}
    if args.validation_file:
        splits["validation"] = _load_table(args.validation_file, args, "--validation_file")
    return DatasetDict(splits), args.train_file


def _read_imagefolder(path: str, flag: str) -> Dataset:
    """``datasets``' imagefolder as is: class-folder labels, or the columns of a ``metadata.csv`` when one exists."""
    if not os.path.isdir(path):
        raise DataError(f"{flag}: directory {path!r} does not exist.")
    try:
        return datasets.load_dataset("imagefolder", data_dir=path, split="train")
    except (FileNotFoundError, ValueError) as err:
        raise DataError(
            f"{flag}: no images found in {path!r}. Expected one subfolder per class holding image files "
            f"(e.g. {path}/cat/001.jpg). ({err})"
        ) from err


def _load_imagefolder(path: str, flag: str) -> Dataset:
    folder = _read_imagefolder(path, flag)
    if "label" not in folder.column_names:  # `datasets` infers no label column from fewer than two class folders
        classes = sorted(p.name for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith("."))
        found = f"a single class folder ({classes[0]!r})" if len(classes) == 1 else "images but no class subfolders"
        raise DataError(f"{flag}: {path!r} holds {found}; classification needs one subfolder per class, at least two.")
    return folder


def _load_table(path: str, args: DataArguments, flag: str) -> Dataset:
    """A csv/json/parquet file whose image column holds paths, relative to the file's own folder."""
    suffix = Path(path).suffix.lower().lstrip(".")
    builder = {"csv": "csv", "json": "json", "jsonl": "json", "parquet": "parquet"}[suffix]
    table = datasets.load_dataset(builder, data_files=path, split="train")
    check_columns(
        table,
        {"--image_column_name": args.image_column_name, "--label_column_name": args.label_column_name},
        flag.removeprefix("--"),
    )
    column = args.image_column_name
    if not isinstance(table.features[column], ImageFeature):
        base = Path(path).resolve().parent

        def absolute(example: dict, index: int) -> dict:
            value = example[column]
            if not isinstance(value, str) or not value:
                raise DataError(
                    f"{flag} {path}: row {index}: column {column!r} must hold an image path; found {value!r}. "
                    "Fill or drop such rows."
                )
            return {column: str(base / value) if not os.path.isabs(value) else value}

        table = table.map(absolute, with_indices=True, desc=f"resolving image paths in {Path(path).name}")
        table = table.cast_column(column, ImageFeature())
    return table


def verify_images(split: Dataset, args: DataArguments, split_name: str) -> tuple[Dataset, int]:
    """Decode every image once; name the bad files, or drop and count them with ``--skip_bad_images``."""
    column = args.image_column_name
    if not isinstance(split.features[column], ImageFeature):
        raise DataError(f"Column {column!r} of the {split_name} data does not hold images ({split.features[column]}).")
    undecoded = split.cast_column(column, ImageFeature(decode=False))
    checked = undecoded.map(
        _check_one_image,
        fn_kwargs={"column": column},
        with_indices=True,
        num_proc=args.preprocessing_num_workers,
        desc=f"verifying {split_name} images",
        remove_columns=[c for c in undecoded.column_names if c != column],
    )
    errors = [(i, msg) for i, msg in enumerate(checked["_image_error"]) if msg]
    if not errors:
        return split, 0
    if not args.skip_bad_images:
        shown = "; ".join(msg for _, msg in errors[:3])
        raise DataError(
            f"{len(errors)} unreadable image(s) in the {split_name} data: {shown}. "
            "Fix or remove them, or pass --skip_bad_images to drop and count them."
        )
    bad = {i for i, _ in errors}
    logger.warning("Skipped %d unreadable %s image(s), e.g. %s", len(bad), split_name, errors[0][1])
    return split.select([i for i in range(len(split)) if i not in bad]), len(bad)


def _check_one_image(example: dict, index: int, column: str) -> dict:
    from PIL import Image

    value = example[column] or {}
    where = value.get("path") or f"row {index}"
    try:
        if value.get("bytes") is not None:
            import io

            source = io.BytesIO(value["bytes"])
        else:
            source = value.get("path")
            if not source:
                return {"_image_error": f"{where}: no image data"}
        with Image.open(source) as image:
            image.load()
    except Exception as err:  # any decoder failure means the same thing to the user: this file is unusable
        return {"_image_error": f"{where}: {type(err).__name__}: {err}"}
    return {"_image_error": ""}
