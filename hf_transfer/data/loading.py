"""Load a labelled image dataset through ``datasets``: Hub name, imagefolder, or csv/json/parquet with image paths.

Whatever the source, the result is the same: train and validation splits with the labels encoded for their problem
type (a ``ClassLabel``, multi-hot vectors or floats; see :mod:`hf_transfer.data.labels`) and the label names, checked
for the mistakes that otherwise surface hours later (missing column, one class, empty split, a corrupt file).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import datasets
from datasets import Dataset
from datasets import Image as ImageFeature

from ..config import DataArguments
from ..exceptions import DataError
from .labels import check_columns, labelled_splits
from .sources import EVERY_FILE, RawSplits, load_raw_splits, read_table
from .splits import LabelledData
from .unlabeled import attach_unlabeled, read_unlabeled, split_off_empty_labels, unlabeled_description

logger = logging.getLogger(__name__)


def load_image_data(args: DataArguments, seed: int = 42) -> LabelledData:
    """Train/validation splits with labels of the inferred (or given) problem type and every image decodable.

    ``args`` are resolved (presets and defaults filled, as :func:`hf_transfer.recipe.resolve_config` does)."""
    raw = load_raw_splits(args, _load_imagefolder, lambda path, flag: _load_table(path, args, flag))
    raw.train, unlabeled = split_off_empty_labels(raw.train, args.label_column_name, args)
    columns = {"--image_column_name": args.image_column_name, "--label_column_name": args.label_column_name}
    for split_name, split in raw.present():
        check_columns(split, columns, split_name)
    data = labelled_image_data(raw, args, seed, args.problem_type)
    if unlabeled is None:
        unlabeled = read_unlabeled(args, _read_imagefolder, lambda path, flag: _load_table(path, args, flag, False))
    if unlabeled is not None:

        def checked(split: Dataset) -> Dataset:
            split, skipped = verify_images(split, args, "unlabelled")
            data.skipped_images["unlabelled"] = skipped
            return split

        data = attach_unlabeled(data, unlabeled, unlabeled_description(args), args, seed, checked)
    return data


def labelled_image_data(
    raw: RawSplits, args: DataArguments, seed: int, problem_type: str | None, text_columns: list[str] | None = None
) -> LabelledData:
    """Checked columns in, ready splits out: labels encoded for ``problem_type`` (None: inferred) and aligned across
    splits, a seeded hold-out when there is no validation split, the sample limits, every image decoded once (the
    unreadable ones counted per split), no empty split."""
    data = dataclasses.replace(
        labelled_splits(raw.train, raw.validation, args, seed, problem_type),
        image_column=args.image_column_name,
        text_columns=text_columns or [],
        source=raw.source,
        validation_split=raw.validation_split,
    )
    if args.verify_images:
        data.train, data.skipped_images["train"] = verify_images(data.train, args, "train")
        data.validation, data.skipped_images["validation"] = verify_images(data.validation, args, "validation")
    data.require_examples(" after filtering")
    return data


def _read_imagefolder(path: str, flag: str) -> Dataset:
    """``datasets``' imagefolder: class-folder labels, or the columns of a ``metadata.csv`` when one exists; every
    image in the folder (:data:`EVERY_FILE`)."""
    if not os.path.isdir(path):
        raise DataError(f"{flag}: directory {path!r} does not exist.")
    try:
        return datasets.load_dataset("imagefolder", data_dir=path, data_files=EVERY_FILE, split="train")
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


def _load_table(path: str, args: DataArguments, flag: str, labelled: bool = True) -> Dataset:
    """A csv/json/parquet file whose image column holds paths, relative to the file's own folder."""
    table = read_table(path, flag)
    columns = {"--image_column_name": args.image_column_name}
    if labelled:
        columns["--label_column_name"] = args.label_column_name
    check_columns(table, columns, flag.removeprefix("--"))
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
    if len(split) == 0:  # no validation split (the small-data protocol): nothing to decode
        return split, 0
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
