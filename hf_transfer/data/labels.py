"""Labels and splits shared by every modality: column checks, class encoding, stratified hold-out."""

from __future__ import annotations

import logging

import datasets
from datasets import ClassLabel, Dataset

from ..exceptions import DataError

logger = logging.getLogger(__name__)

VALIDATION_SPLIT_NAMES = ("validation", "valid", "val", "test")


def check_columns(split: Dataset, required: dict[str, str], split_name: str) -> None:
    """``required`` maps the flag that names a column to the column; a missing one is reported with what exists."""
    for flag, column in required.items():
        if column not in split.column_names:
            raise DataError(
                f"{flag}: column {column!r} is not in the {split_name} data; its columns are {split.column_names}. "
                f"Pass {flag} with one of them."
            )


def encode_class_labels(
    train: Dataset, validation: Dataset | None, column: str
) -> tuple[Dataset, Dataset | None, list[str]]:
    """Give both splits the same ``ClassLabel`` column; string and integer labels become named classes."""
    feature = train.features[column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        present = set(train.unique(column))
    else:
        values = train.unique(column)
        if any(v is None for v in values):
            raise DataError(f"Column {column!r} has missing (None) labels in the train data; fill or drop those rows.")
        if any(isinstance(v, (list, dict)) for v in values):
            raise DataError(
                f"Column {column!r} holds lists/dicts: for several labels per example use "
                "--problem_type multi_label_classification; single-label classification needs one label per row."
            )
        if any(isinstance(v, float) and not float(v).is_integer() for v in values):
            raise DataError(
                f"Column {column!r} holds non-integer numbers: for a continuous target use --problem_type regression."
            )
        names = [str(v) for v in sorted(values)]
        train = train.cast_column(column, datasets.Value("string")).cast_column(column, ClassLabel(names=names))
        present = set(range(len(names)))
    if len(present) < 2:
        only = names[next(iter(present))] if present else "none"
        raise DataError(f"Column {column!r} holds a single class ({only!r}); classification needs at least two.")
    if validation is not None:
        validation = align_class_labels(validation, column, names)
    return train, validation, names


def align_class_labels(split: Dataset, column: str, names: list[str]) -> Dataset:
    """Map a validation split's labels onto the training label set, by name; unknown labels are an error."""
    feature = split.features[column]
    if isinstance(feature, ClassLabel) and list(feature.names) == names:
        return split
    if isinstance(feature, ClassLabel):
        values = [feature.int2str(v) for v in split.unique(column)]
    else:
        values = [None if v is None else str(v) for v in split.unique(column)]
    unknown = sorted(set(values) - set(names), key=str)
    if unknown:
        raise DataError(
            f"Validation labels {unknown[:10]} in column {column!r} are outside the training label set {names[:20]}."
        )
    if isinstance(feature, ClassLabel):  # same names, other order: re-index by name
        mapping = {i: names.index(feature.int2str(i)) for i in range(feature.num_classes)}
        split = split.cast_column(column, datasets.Value("int64"))
        split = split.map(lambda ex: {column: mapping[ex[column]]}, desc="aligning validation labels")
        return split.cast_column(column, ClassLabel(names=names))
    return split.cast_column(column, datasets.Value("string")).cast_column(column, ClassLabel(names=names))


def stratified_split(train: Dataset, fraction: float, column: str, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of ``train``, stratified by a ``ClassLabel`` column (or at random without one)."""
    stratify = column if isinstance(train.features.get(column), ClassLabel) else None
    try:
        parts = train.train_test_split(test_size=fraction, stratify_by_column=stratify, seed=seed)
    except ValueError as err:
        raise DataError(
            f"Cannot hold out a {'stratified ' if stratify else ''}{fraction:.0%} validation split from {len(train)} "
            f"training examples ({err}). Provide a validation split, more data, or a different --train_val_split."
        ) from err
    logger.info("No validation split: held out %d of %d examples (seed %d).", len(parts["test"]), len(train), seed)
    return parts["train"], parts["test"]


def limit_samples(
    train: Dataset, validation: Dataset, max_train: int | None, max_eval: int | None, seed: int
) -> tuple[Dataset, Dataset]:
    """``--max_train_samples`` / ``--max_eval_samples``: a seeded random subset, so truncation keeps every class."""
    if max_train is not None:
        train = train.shuffle(seed=seed).select(range(min(max_train, len(train))))
    if max_eval is not None:
        validation = validation.shuffle(seed=seed).select(range(min(max_eval, len(validation))))
    return train, validation
