"""Load a labelled image dataset through ``datasets``: Hub name, imagefolder, or csv/json/parquet with image paths.

Whatever the source, the result is the same: train and validation splits with the labels encoded for their problem
type (a ``ClassLabel``, multi-hot vectors or floats; see :mod:`hf_transfer.data.labels`) and the label names, checked
for the mistakes that otherwise surface hours later (missing column, one class, empty split, a corrupt file).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from datasets import Dataset
from datasets import Image as ImageFeature

from ..config import IMAGE_CLASSIFICATION, DataArguments
from ..exceptions import DataError
from .builtin import with_data_presets
from .labels import VALIDATION_SPLIT_NAMES, LabelledSplits, check_columns, labelled_splits
from .sources import load_raw_splits, read_table

logger = logging.getLogger(__name__)


@dataclass
class ImageData:
    train: Dataset
    validation: Dataset
    label_names: list[str] | None  # None for regression
    image_column: str
    label_column: str
    problem_type: str
    skipped_images: dict[str, int] = field(default_factory=dict)
    source: str = ""
    row_sources: dict[str, str] = field(default_factory=dict)  # what each split's `_row` ids index (feature cache)

    def splits(self) -> list[tuple[str, Dataset]]:
        return [("train", self.train), ("validation", self.validation)]


def load_image_data(args: DataArguments, seed: int = 42) -> ImageData:
    """Train/validation splits with labels of the inferred (or given) problem type and every image decodable."""
    args = with_data_presets(args, IMAGE_CLASSIFICATION)
    raw, source = load_raw_splits(args, _load_imagefolder, lambda path, flag: _load_table(path, args, flag))
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    columns = {"--image_column_name": args.image_column_name, "--label_column_name": args.label_column_name}
    check_columns(train, columns, "train")
    if validation is not None:
        check_columns(validation, columns, "validation")
    splits, skipped = finish_labelled_image_splits(train, validation, args, seed, source, args.problem_type)
    return ImageData(
        splits.train,
        splits.validation,
        splits.label_names,
        args.image_column_name,
        args.label_column_name,
        splits.problem_type,
        skipped,
        source,
        splits.row_sources,
    )


def finish_labelled_image_splits(
    train: Dataset, validation: Dataset | None, args: DataArguments, seed: int, source: str, problem_type: str | None
) -> tuple[LabelledSplits, dict[str, int]]:
    """Checked columns in, ready splits out: labels encoded for ``problem_type`` (None: inferred) and aligned across
    splits, a seeded hold-out when there is no validation split, the sample limits, every image decoded once, no
    empty split. Returns the splits and the skipped images per split."""
    splits = labelled_splits(train, validation, args, seed, problem_type)
    skipped: dict[str, int] = {}
    if args.verify_images:
        splits.train, skipped["train"] = verify_images(splits.train, args, "train")
        splits.validation, skipped["validation"] = verify_images(splits.validation, args, "validation")
    for split_name, split in (("train", splits.train), ("validation", splits.validation)):
        if len(split) == 0:
            raise DataError(
                f"The {split_name} split of {source} is empty after filtering; nothing to train/evaluate on."
            )
    return splits, skipped


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
    """Class-folder labels, or the columns of a metadata file (e.g. a JSON list of labels per image)."""
    folder = _read_imagefolder(path, flag)
    if len(folder.column_names) > 1:  # a metadata label column is checked against --label_column_name by the caller
        return folder
    # `datasets` infers no label column from fewer than two class folders
    classes = sorted(p.name for p in Path(path).iterdir() if p.is_dir() and not p.name.startswith("."))
    found = f"a single class folder ({classes[0]!r})" if len(classes) == 1 else "images but no class subfolders"
    raise DataError(f"{flag}: {path!r} holds {found}; classification needs one subfolder per class, at least two.")


def _load_table(path: str, args: DataArguments, flag: str) -> Dataset:
    """A csv/json/parquet file whose image column holds paths, relative to the file's own folder."""
    table = read_table(path, flag)
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
