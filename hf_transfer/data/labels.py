"""Labels and splits shared by every modality: column checks, the problem type, label encoding, seeded hold-out.

Three problem types share one encoder (:func:`encode_labels`): single-label (a ``ClassLabel``), multi-label (label
lists, encoded as multi-hot float vectors for BCE) and regression (a float column, for MSE). A label list can be a list
column (json/jsonl/parquet, an imagefolder's ``metadata.jsonl``, a Hub ``Sequence``) or, since csv cannot hold lists, a
csv cell holding a JSON list (``["cat", "outdoor"]``), recognised when every non-empty cell of the column is one; with
``--problem_type multi_label_classification`` a plain cell is split on ``|`` (``cat|outdoor``; empty: no labels).
"""

from __future__ import annotations

import hashlib
import json
import logging

import datasets
import numpy as np
import pyarrow as pa
from datasets import ClassLabel, Dataset, Sequence, Value

from ..config import MULTI_LABEL, REGRESSION, SINGLE_LABEL, DataArguments
from ..exceptions import DataError
from .splits import LabelledData

logger = logging.getLogger(__name__)

LABEL_SEPARATOR = "|"  # between labels in a plain csv cell, with an explicit --problem_type multi_label_classification


ROW_COLUMN = "_row"  # each example's row in the dataset named by ``row_sources``: what the feature cache keys on


def check_columns(split: Dataset, required: dict[str, str], split_name: str) -> None:
    """``required`` maps the flag that names a column to the column; a missing one is reported with what exists."""
    for flag, column in required.items():
        if column not in split.column_names:
            raise DataError(
                f"{flag}: column {column!r} is not in the {split_name} data; its columns are {split.column_names}. "
                f"Pass {flag} with one of them."
            )


# A hold-out is taken only when it leaves at least this many examples of every class (single-label data): at 15 %,
# from 34 examples per class up. Fewer cannot choose a checkpoint or measure accuracy (the small-data protocol).
MIN_HELD_OUT_PER_CLASS = 5
DEFAULT_TRAIN_VAL_SPLIT = 0.15  # held out when --train_val_split is unset and the data has no validation split


def labelled_splits(
    train: Dataset,
    validation: Dataset | None,
    args: DataArguments,
    seed: int,
    problem_type: str | None,
    chooses_nothing_up_to: int = 0,
) -> LabelledData:
    """What every loader does with its labels: encode them for ``problem_type`` (None: inferred), hold out a seeded
    validation split when there is none (stratified for single-label), then apply the sample limits.

    ``chooses_nothing_up_to``: up to this many examples in the smallest class, the run's strategy would choose
    nothing on a validation split (the text few-label default fits its head in closed form), so none is held out."""
    splits = encode_labels(train, validation, args.label_column_name, problem_type)
    splits.train = with_row_ids(splits.train)
    splits.row_sources = {"train": splits.train._fingerprint}
    split_seed = seed if args.split_seed is None else args.split_seed
    if splits.validation is None:
        fraction = DEFAULT_TRAIN_VAL_SPLIT if args.train_val_split is None else args.train_val_split
        if args.train_val_split is None:  # a fraction the user gave is always held out
            splits.no_validation = too_few_to_hold_out(
                splits.train, args.label_column_name, fraction, chooses_nothing_up_to
            )
        if splits.no_validation:  # the small-data protocol: every labelled example trains
            logger.info("No validation split: %s.", splits.no_validation)
            splits.validation = splits.train.select([])
        else:
            splits.train, splits.validation = stratified_split(
                splits.train, fraction, args.label_column_name, split_seed
            )
        splits.row_sources["validation"] = splits.row_sources["train"]
    else:
        splits.validation = with_row_ids(splits.validation)
        splits.row_sources["validation"] = splits.validation._fingerprint
    if args.train_samples_per_class is not None:
        sampling_seed = seed if args.sampling_seed is None else args.sampling_seed
        splits.train = sample_per_class(
            splits.train, args.label_column_name, args.train_samples_per_class, sampling_seed
        )
        splits.zero_shot = args.train_samples_per_class == 0
    splits.train, splits.validation = limit_samples(
        splits.train, splits.validation, args.max_train_samples, args.max_eval_samples, seed, eval_seed=split_seed
    )
    return splits


def rows_digest(split: Dataset, source: str) -> str:
    """Which examples a split holds (its rows of the dataset ``source`` fingerprints): equal digests, equal sets."""
    rows = ",".join(str(row) for row in sorted(split[ROW_COLUMN]))
    return hashlib.sha256(f"{source}:{rows}".encode()).hexdigest()[:16]


def with_row_ids(split: Dataset) -> Dataset:
    return split if ROW_COLUMN in split.column_names else split.add_column(ROW_COLUMN, list(range(len(split))))


def sample_per_class(split: Dataset, column: str, per_class: int, seed: int) -> Dataset:
    """``per_class`` examples of every class, nested: for one ``seed`` each class's examples are ranked once, and a
    size takes the first ``per_class`` of them, so the 8-per-class set lies inside the 32-per-class set."""
    feature = split.features.get(column)
    if not isinstance(feature, ClassLabel):
        raise DataError("--train_samples_per_class samples single-label classes; this data has no class column.")
    labels = np.asarray(split[column])
    rng = np.random.default_rng(seed)
    chosen = []
    for class_id, name in enumerate(feature.names):
        rows = np.flatnonzero(labels == class_id)
        if len(rows) < per_class:
            raise DataError(
                f"--train_samples_per_class {per_class}: class {name!r} has only {len(rows)} training examples; "
                f"choose at most {len(rows)} (the smallest class)."
            )
        chosen.extend(rows[rng.permutation(len(rows))[:per_class]].tolist())
    return split.select(sorted(chosen))


def encode_labels(
    train: Dataset, validation: Dataset | None, column: str, problem_type: str | None = None
) -> LabelledData:
    """Both splits' ``column`` encoded for ``problem_type`` (None: inferred from the training labels)."""
    problem_type = problem_type or infer_problem_type(train, column)
    label_names = None
    if problem_type == MULTI_LABEL:
        train, validation, label_names = encode_multi_labels(train, validation, column)
    elif problem_type == REGRESSION:
        train = as_float_labels(train, column, "train")
        validation = None if validation is None else as_float_labels(validation, column, "validation")
    else:
        train, validation, label_names = encode_class_labels(train, validation, column)
    return LabelledData(train, validation, label_names, problem_type, column)


def infer_problem_type(split: Dataset, column: str) -> str:
    """Label lists (or a csv column of JSON lists) → multi-label; floats → regression; anything else → single-label."""
    feature = split.features[column]
    if _is_list_feature(feature):
        return MULTI_LABEL
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        return REGRESSION
    if isinstance(feature, Value) and feature.dtype in ("string", "large_string") and _holds_json_lists(split, column):
        return MULTI_LABEL
    return SINGLE_LABEL


def _is_list_feature(feature) -> bool:
    return isinstance(feature, (Sequence, list)) or type(feature).__name__ == "List"


def _holds_json_lists(split: Dataset, column: str) -> bool:
    """Whether every non-empty cell is written as a JSON list; a column mixing lists with plain labels is an error,
    since either reading of it would silently be wrong."""
    filled = [(row, cell.strip()) for row, cell in enumerate(split[column]) if cell is not None and cell.strip()]
    lists = [row for row, cell in filled if cell.startswith("[")]
    if lists and len(lists) < len(filled):
        row, cell = next((row, cell) for row, cell in filled if not cell.startswith("["))
        raise DataError(
            f"Column {column!r} mixes JSON label lists (row {lists[0]}) with plain labels (row {row}: {cell!r}): "
            "write every cell as a JSON list, or pass --problem_type multi_label_classification to read plain cells "
            f"as {LABEL_SEPARATOR!r}-separated labels."
        )
    return bool(lists)


def encode_class_labels(
    train: Dataset, validation: Dataset | None, column: str
) -> tuple[Dataset, Dataset | None, list[str]]:
    """Give both splits the same ``ClassLabel`` column; string and integer labels become named classes."""
    feature = train.features[column]
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
        present = set(train.unique(column))
    else:
        try:
            values = train.unique(column)
        except pa.ArrowException as err:  # e.g. JSON rows whose labels mix numbers and strings
            raise DataError(f"Column {column!r} mixes value types ({err}); give every label as one type.") from None
        _refuse_mixed_numbers_and_names(column, values)
        if any(v is None for v in values):
            rows = [row for row, value in enumerate(train[column]) if value is None]
            shown = ", ".join(map(str, rows[:10])) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
            raise DataError(
                f"Column {column!r} has missing labels in {len(rows)} training row(s) ({shown}): fill or drop them, "
                "or pass --empty_labels unlabeled to use them as unlabelled examples for self-training."
            )
        if any(isinstance(v, (list, dict)) for v in values):
            raise DataError(
                f"Column {column!r} holds lists/dicts: for several labels per example use "
                "--problem_type multi_label_classification; single-label classification needs one label per row."
            )
        if any(isinstance(v, float) and not float(v).is_integer() for v in values):
            raise DataError(
                f"Column {column!r} holds non-integer numbers: for a continuous target use --problem_type regression."
            )
        names = [str(v) for v in sorted(values)]  # numbers in numeric order (2 before 10)
        train = train.class_encode_column(column)  # which orders the names as strings ("10" before "2")
        if train.features[column].names != names:
            train = train.align_labels_with_mapping(_label2id(names), column)
        present = set(range(len(names)))
    if len(present) < 2:
        only = names[next(iter(present))] if present else "none"
        raise DataError(f"Column {column!r} holds a single class ({only!r}); classification needs at least two.")
    if validation is not None:
        validation = align_class_labels(validation, column, names)
    return train, validation, names


def _refuse_mixed_numbers_and_names(column: str, values: list) -> None:
    """``0, 1, neg, pos`` is two label sets written together (a csv column reads them all as text): four classes would
    be wrong, so it is an error naming both kinds."""
    numbers = [v for v in values if isinstance(v, (int, float)) or (isinstance(v, str) and _is_number(v))]
    names = [v for v in values if isinstance(v, str) and not _is_number(v)]
    if numbers and names:
        shown = ", ".join(repr(v) for v in sorted(map(str, numbers))[:5])
        others = ", ".join(repr(v) for v in sorted(names)[:5])
        raise DataError(
            f"Column {column!r} mixes numeric labels ({shown}) with named ones ({others}); use one kind of label for "
            "every row (e.g. map the numbers to their names)."
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
    if isinstance(feature, ClassLabel):  # other names or order: re-index by name
        return split.align_labels_with_mapping(_label2id(names), column)
    return split.cast_column(column, datasets.Value("string")).cast_column(column, ClassLabel(names=names))


def _label2id(names: list[str]) -> dict[str, int]:
    """The mapping ``Dataset.align_labels_with_mapping`` takes. It matches names case-insensitively, so two classes
    whose names differ only in case cannot be told apart there: refused in one line rather than merged."""
    folded: dict[str, str] = {}
    for name in names:
        if (other := folded.setdefault(name.lower(), name)) != name:
            raise DataError(
                f"Labels {other!r} and {name!r} differ only in case; rename one so the classes can be matched by name."
            )
    return {name: index for index, name in enumerate(names)}


def encode_multi_labels(
    train: Dataset, validation: Dataset | None, column: str
) -> tuple[Dataset, Dataset | None, list[str]]:
    """Label lists → multi-hot float vectors over the sorted union of training labels."""
    train_lists = label_lists(train, column, "train")
    names = sorted({label for labels in train_lists for label in labels})
    if len(names) < 2:
        raise DataError(f"Multi-label column {column!r} holds fewer than two distinct labels ({names}).")
    train = _as_multi_hot(train, column, train_lists, names)
    if validation is not None:
        validation_lists = label_lists(validation, column, "validation")
        for row, labels in enumerate(validation_lists):
            unknown = sorted(set(labels) - set(names))
            if unknown:
                raise DataError(
                    f"Row {row} of the validation data: labels {unknown[:10]} in column {column!r} are outside the "
                    f"training label set {names[:20]}."
                )
        validation = _as_multi_hot(validation, column, validation_lists, names)
    return train, validation, names


def label_lists(split: Dataset, column: str, split_name: str) -> list[list[str]]:
    """Each row's labels, as strings, whichever way the column writes them."""
    inner = getattr(split.features[column], "feature", None)
    to_name = inner.int2str if isinstance(inner, ClassLabel) else str
    return [_row_labels(cell, row, column, split_name, to_name) for row, cell in enumerate(split[column])]


def _row_labels(cell, row: int, column: str, split_name: str, to_name) -> list[str]:
    where = f"Row {row} of the {split_name} data: multi-label column {column!r}"
    if cell is None:
        return []
    if isinstance(cell, str):
        text = cell.strip()
        if not text.startswith("["):
            return [label.strip() for label in text.split(LABEL_SEPARATOR) if label.strip()]
        try:
            cell = json.loads(text)
        except ValueError as err:
            raise DataError(
                f"{where} holds {cell!r}, which is not valid JSON ({err}); write a label list as "
                '["cat", "outdoor"] (what json.dumps writes).'
            ) from None
    if not isinstance(cell, list):
        raise DataError(
            f"{where} must hold a list of labels (a list, a JSON list or {LABEL_SEPARATOR!r}-separated labels), "
            f"got {cell!r}."
        )
    if any(isinstance(label, (list, dict, bool)) or label is None for label in cell):
        raise DataError(f"{where}: each label must be a string or a number, got {cell!r}.")
    return [to_name(label) for label in cell]


def _as_multi_hot(split: Dataset, column: str, lists: list[list[str]], names: list[str]) -> Dataset:
    vectors = [[1.0 if name in labels else 0.0 for name in names] for labels in lists]
    split = split.remove_columns(column).add_column(column, vectors)
    return split.cast_column(column, Sequence(Value("float32"), length=len(names)))


def as_float_labels(split: Dataset, column: str, split_name: str) -> Dataset:
    """A regression target: every label must be a number (a string or a missing value is named with its row)."""
    for row, value in enumerate(split[column]):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DataError(
                f"Row {row} of the {split_name} data: regression label {column!r} is {value!r}, not a number."
            )
    return split.cast_column(column, Value("float32"))


def too_few_to_hold_out(train: Dataset, column: str, fraction: float, chooses_nothing_up_to: int = 0) -> str | None:
    """Why a ``fraction`` hold-out of ``train`` is not worth taking, or None when it is: single-label data where it
    would leave fewer than :data:`MIN_HELD_OUT_PER_CLASS` examples of some class (so few cannot choose a checkpoint,
    one example flips the choice, or measure accuracy), or whose smallest class has at most
    ``chooses_nothing_up_to`` examples (the run would choose nothing on it). Held-out examples are a large share of
    what the model could learn from: in both cases every example trains and the run reports no validation metrics."""
    feature = train.features.get(column)
    if not isinstance(feature, ClassLabel) or len(train) == 0:
        return None
    smallest = int(np.bincount(np.asarray(train[column]), minlength=len(feature.names)).min())
    measure = "(give --validation_file / --validation_dir, or --train_val_split, to measure one)"
    if smallest * fraction < MIN_HELD_OUT_PER_CLASS:
        return (
            f"a {fraction:.0%} hold-out of {smallest} examples of the smallest class would leave fewer than "
            f"{MIN_HELD_OUT_PER_CLASS} per class to validate on, so all {len(train)} examples train and no "
            f"validation metric is reported {measure}"
        )
    if smallest <= chooses_nothing_up_to:
        return (
            f"the smallest class has {smallest} examples (≤ {chooses_nothing_up_to}), where the run's strategy "
            f"chooses nothing on a validation split, so all {len(train)} examples train and no validation metric is "
            f"reported {measure}"
        )
    return None


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
    train: Dataset,
    validation: Dataset,
    max_train: int | None,
    max_eval: int | None,
    seed: int,
    eval_seed: int | None = None,
) -> tuple[Dataset, Dataset]:
    """``--max_train_samples`` / ``--max_eval_samples``: a seeded random subset, so truncation keeps every class. The
    evaluation subset follows ``eval_seed`` (the split seed): runs that share it (a study's cells) share it."""
    if max_train is not None:
        train = train.shuffle(seed=seed).select(range(min(max_train, len(train))))
    if max_eval is not None:
        eval_seed = seed if eval_seed is None else eval_seed
        validation = validation.shuffle(seed=eval_seed).select(range(min(max_eval, len(validation))))
    return train, validation
