"""Unlabelled examples for self-training: read from their own source, checked like training data, never evaluated on.

A few-label user almost always has many unlabelled examples of the same kind (the photos not yet sorted, the tickets
not yet tagged). They come from ``--unlabeled_file`` (the training data's text or image column; a label column is not
needed), ``--unlabeled_dir`` (images, flat or nested: folder names are ignored), ``--unlabeled_dataset`` (+
``--unlabeled_split``), or, with ``--empty_labels unlabeled``, the training rows whose label is empty.

Whatever the source, the result is one split of the input columns with row ids (the feature cache keys on them) and
``TRUE_LABEL``: a label the source happened to carry (a benchmark's pool), encoded with the training label names, or
-1. It is only ever used to report how accurate the pseudo-labels were, never to train. Examples equal to a training or
validation example are dropped (an evaluation example must not come back as a pseudo-labelled training example).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

import datasets
from datasets import Dataset
from datasets import Image as ImageFeature

from ..config import BUILTIN_PREFIX, SINGLE_LABEL, DataArguments
from ..exceptions import ConfigError, DataError
from .builtin import builtin_dataset_dir
from .labels import check_columns, with_row_ids
from .sources import EVERY_FILE, read_table
from .splits import LabelledData

logger = logging.getLogger(__name__)

TRUE_LABEL = "_true_label"  # a label the unlabelled source carried (class id; -1: none): for reporting only
UNLABELED = "unlabeled"  # the split's name, as the feature cache and the messages call it

Reader = Callable[[str, str], Dataset]


def is_empty_label(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def split_off_empty_labels(train: Dataset, column: str, args: DataArguments) -> tuple[Dataset, Dataset | None]:
    """With ``--empty_labels unlabeled``, the training rows whose label is empty become unlabelled examples (one line
    says how many); otherwise the rows stay (single-label encoding names them as an error; for multi-label data an
    empty cell means no label)."""
    if args.empty_labels != UNLABELED or column not in train.column_names:
        return train, None  # the loader names a missing column
    empty = [row for row, value in enumerate(train[column]) if is_empty_label(value)]
    if not empty:
        raise DataError(f"--empty_labels unlabeled: no training row has an empty {column!r}; drop the flag.")
    kept = sorted(set(range(len(train))) - set(empty))
    logger.info("--empty_labels unlabeled: %d training rows without a label are unlabelled examples.", len(empty))
    return train.select(kept), train.select(empty).remove_columns(column)


def unlabeled_description(args: DataArguments) -> str:
    """The unlabelled source as messages and the card name it, its flag first."""
    if args.unlabeled_file:
        return f"--unlabeled_file {args.unlabeled_file}"
    if args.unlabeled_dir:
        return f"--unlabeled_dir {args.unlabeled_dir}"
    if args.unlabeled_dataset:
        return f"--unlabeled_dataset {args.unlabeled_dataset} ({args.unlabeled_split} split)"
    return "--empty_labels unlabeled (the training rows without a label)"


def read_unlabeled(args: DataArguments, read_folder: Reader | None, read_file: Reader = read_table) -> Dataset | None:
    """The raw unlabelled split named by the flags, or None when there is none."""
    if args.unlabeled_file:
        return read_file(args.unlabeled_file, "--unlabeled_file")
    if args.unlabeled_dir:
        return read_image_folder(args.unlabeled_dir, "--unlabeled_dir", args.image_column_name)
    name = args.unlabeled_dataset
    if not name:
        return None
    if name.startswith(BUILTIN_PREFIX):
        try:
            folder = builtin_dataset_dir(name)
        except ConfigError as err:  # it names --dataset_name
            raise ConfigError(str(err).replace("--dataset_name", "--unlabeled_dataset", 1)) from None
        table = folder / f"{args.unlabeled_split}.csv"
        if table.is_file():
            return read_file(str(table), "--unlabeled_dataset")
        if read_folder is None or (folder / "train.csv").is_file():
            raise DataError(f"--unlabeled_split {args.unlabeled_split!r}: {name} has no such split.")
        return read_folder(str(folder), "--unlabeled_dataset")
    try:
        return datasets.load_dataset(name, args.dataset_config_name, split=args.unlabeled_split)
    except ValueError as err:  # an unknown split
        raise DataError(f"--unlabeled_dataset {name} --unlabeled_split {args.unlabeled_split}: {err}") from None


def read_image_folder(path: str, flag: str, column: str) -> Dataset:
    """Every image under ``path``, flat or nested; folder names are not labels."""
    try:
        folder = datasets.load_dataset(
            "imagefolder", data_dir=path, data_files=EVERY_FILE, split="train", drop_labels=True
        )
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"{flag}: no images found in {path!r} ({err}).") from None
    return folder.rename_column("image", column) if column != "image" else folder


def attach_unlabeled(
    data: LabelledData,
    raw: Dataset,
    source: str,
    args: DataArguments,
    seed: int,
    check: Callable[[Dataset], Dataset],
) -> LabelledData:
    """``raw`` as ``data.unlabeled``: its input columns checked (``check`` names bad rows, or drops them where the
    user allowed), duplicates of labelled examples dropped, at most ``--max_unlabeled_samples`` (seeded)."""
    columns = [data.image_column] if data.image_column else []
    columns += data.text_columns
    flag = source.split(" ")[0]
    for column in columns:
        check_columns(raw, {flag: column}, "unlabelled")
    truth = _true_labels(raw, data)
    raw = raw.select_columns(columns).add_column(TRUE_LABEL, truth)
    if args.max_unlabeled_samples is not None and len(raw) > args.max_unlabeled_samples:
        raw = raw.shuffle(seed=seed).select(range(args.max_unlabeled_samples))
    if len(raw) == 0:
        raise DataError(f"{flag}: no unlabelled examples in {source}.")
    raw = check(raw)
    labelled = {key for _, split in data.splits() for key in example_keys(split, columns)}
    keys = example_keys(raw, columns)
    fresh = [row for row, key in enumerate(keys) if key not in labelled]
    if len(fresh) < len(raw):
        logger.info(
            "Unlabelled data: dropped %d example(s) equal to a training or validation example.", len(raw) - len(fresh)
        )
        raw = raw.select(fresh)
    if len(raw) == 0:
        raise DataError(f"{flag}: every unlabelled example in {source} is also a training or validation example.")
    data.unlabeled = with_row_ids(raw.flatten_indices())
    data.unlabeled_source = source
    data.row_sources[UNLABELED] = data.unlabeled._fingerprint
    logger.info("Unlabelled data: %d examples from %s.", len(data.unlabeled), source)
    return data


def _true_labels(raw: Dataset, data: LabelledData) -> list[int]:
    """The class id of a label the unlabelled source carries (a benchmark's pool), else -1 per row."""
    column = data.label_column
    if data.problem_type != SINGLE_LABEL or column not in raw.column_names or not data.label_names:
        return [-1] * len(raw)
    feature = raw.features[column]
    to_id = {name: i for i, name in enumerate(data.label_names)}
    values = raw[column]
    if isinstance(feature, datasets.ClassLabel):
        values = [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return [to_id.get(str(v), -1) if not is_empty_label(v) else -1 for v in values]


def example_keys(split: Dataset, columns: list[str]) -> list[tuple]:
    """Each example's identity by content: its texts, and its image's bytes (hashed)."""
    if len(split) == 0:
        return []
    parts = []
    for column in columns:
        feature = split.features[column]
        if isinstance(feature, ImageFeature):
            undecoded = split.cast_column(column, ImageFeature(decode=False))[column]
            parts.append([_image_digest(value) for value in undecoded])
        else:
            parts.append(list(split[column]))
    return list(zip(*parts))


def _image_digest(value: dict | None) -> str:
    value = value or {}
    content = value.get("bytes")
    if content is None and value.get("path"):
        try:
            with open(value["path"], "rb") as file:
                content = file.read()
        except OSError:
            return f"path:{value['path']}"  # unreadable: ``check`` names it
    return hashlib.sha256(content or b"").hexdigest()
