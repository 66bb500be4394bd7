"""Load a labelled text dataset through ``datasets``: Hub name or csv/json/parquet; one text column or a pair.

Three problem types share the loader: single-label (a ``ClassLabel``), multi-label (a column of label lists, encoded as
multi-hot float vectors for BCE) and regression (a float column).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import ClassLabel, Dataset, DatasetDict, Sequence, Value

from ..config import DataArguments, text_columns
from ..exceptions import DataError
from .builtin import BUILTIN_PREFIX, builtin_dataset_dir, resolve_data_presets
from .labels import VALIDATION_SPLIT_NAMES, check_columns, encode_class_labels, limit_samples, stratified_split

SINGLE, MULTI, REGRESSION = "single_label_classification", "multi_label_classification", "regression"


@dataclass
class TextData:
    train: Dataset
    validation: Dataset
    label_names: list[str] | None  # None for regression
    text_columns: list[str]
    label_column: str
    problem_type: str
    source: str = ""


def load_text_data(args: DataArguments, seed: int = 42) -> TextData:
    resolve_data_presets(args, "text-classification")
    raw, source = _load_raw(args)
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    columns = text_columns(args)
    for split_name, split in (("train", train), ("validation", validation)):
        if split is not None:
            for column in columns:
                check_columns(split, {"--text_column_names": column}, split_name)
            check_columns(split, {"--label_column_name": args.label_column_name}, split_name)
            check_texts(split, columns, split_name)
    problem_type = args.problem_type or infer_problem_type(train.features[args.label_column_name])
    label = args.label_column_name
    label_names: list[str] | None = None
    if problem_type == SINGLE:
        train, validation, label_names = encode_class_labels(train, validation, label)
    elif problem_type == MULTI:
        train, validation, label_names = encode_multi_labels(train, validation, label)
    else:
        train, validation = (_as_float(s, label, n) for s, n in ((train, "train"), (validation, "validation")))
    if validation is None:
        train, validation = stratified_split(train, args.train_val_split, label, seed)
    train, validation = limit_samples(train, validation, args.max_train_samples, args.max_eval_samples, seed)
    for split_name, split in (("train", train), ("validation", validation)):
        if len(split) == 0:
            raise DataError(f"The {split_name} split of {source} is empty; nothing to train/evaluate on.")
    return TextData(train, validation, label_names, columns, label, problem_type, source)


def _load_raw(args: DataArguments) -> tuple[DatasetDict, str]:
    if args.dataset_name and args.dataset_name.startswith(BUILTIN_PREFIX):
        folder = builtin_dataset_dir(args.dataset_name)
        return datasets.load_dataset("csv", data_files={"train": str(folder / "train.csv")}), args.dataset_name
    if args.dataset_name:
        loaded = datasets.load_dataset(args.dataset_name, args.dataset_config_name)
        if "train" not in loaded:
            raise DataError(f"Dataset {args.dataset_name!r} has no 'train' split; it has {list(loaded)}.")
        return loaded, args.dataset_name
    if not args.train_file:
        raise DataError("Text classification reads --dataset_name or --train_file (csv/json/jsonl/parquet).")
    files = {"train": args.train_file}
    if args.validation_file:
        files["validation"] = args.validation_file
    suffixes = {Path(f).suffix.lower() for f in files.values()}
    if len(suffixes) != 1:
        raise DataError(f"--train_file and --validation_file must have the same format, got {sorted(suffixes)}.")
    builder = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}[suffixes.pop()]
    return datasets.load_dataset(builder, data_files=files), args.train_file


def check_texts(split: Dataset, columns: list[str], split_name: str) -> None:
    """Every text must be a non-empty string: name the first offending row rather than fail inside the tokenizer."""
    for column in columns:
        for row, value in enumerate(split[column]):
            if not isinstance(value, str) or not value.strip():
                if value is None:
                    problem = "missing (None)"
                else:
                    problem = "empty" if isinstance(value, str) else f"not a string ({value!r})"
                raise DataError(
                    f"Row {row} of the {split_name} data: column {column!r} is {problem}; "
                    "every example needs non-empty text. Fill or drop such rows."
                )


def infer_problem_type(feature) -> str:
    if isinstance(feature, (Sequence, list)) or type(feature).__name__ == "List":
        return MULTI
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        return REGRESSION
    return SINGLE


def encode_multi_labels(
    train: Dataset, validation: Dataset | None, column: str
) -> tuple[Dataset, Dataset | None, list[str]]:
    """A column of label lists → multi-hot float vectors over the sorted union of training labels."""

    def values(split: Dataset, split_name: str) -> list[list[str]]:
        feature = split.features[column]
        inner = getattr(feature, "feature", None)
        out = []
        for row, labels in enumerate(split[column]):
            if not isinstance(labels, list):
                raise DataError(
                    f"Row {row} of the {split_name} data: multi-label column {column!r} must hold a list of labels, "
                    f"got {labels!r}."
                )
            out.append([inner.int2str(v) if isinstance(inner, ClassLabel) else str(v) for v in labels])
        return out

    train_values = values(train, "train")
    names = sorted({label for labels in train_values for label in labels})
    if len(names) < 2:
        raise DataError(f"Multi-label column {column!r} holds fewer than two distinct labels ({names}).")
    index = {name: i for i, name in enumerate(names)}

    def encode(split: Dataset, rows: list[list[str]], split_name: str) -> Dataset:
        unknown = sorted({label for labels in rows for label in labels} - set(index))
        if unknown:
            raise DataError(f"{split_name} labels {unknown[:10]} in column {column!r} are outside the training set.")
        vectors = [[1.0 if name in labels else 0.0 for name in names] for labels in rows]
        split = split.remove_columns(column).add_column(column, vectors)
        return split.cast_column(column, Sequence(Value("float32"), length=len(names)))

    train = encode(train, train_values, "train")
    if validation is not None:
        validation = encode(validation, values(validation, "validation"), "validation")
    return train, validation, names


def _as_float(split: Dataset | None, column: str, split_name: str) -> Dataset | None:
    if split is None:
        return None
    for row, value in enumerate(split[column]):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise DataError(
                f"Row {row} of the {split_name} data: regression label {column!r} is {value!r}, not a number."
            )
    return split.cast_column(column, Value("float32"))


def tokenize_text_dataset(split: Dataset, tokenizer, data: TextData, max_length: int, desc: str) -> Dataset:
    """Truncate to ``max_length``; padding is left to the collator (dynamic, per batch)."""

    def tokenize(batch: dict[str, list]) -> dict:
        texts = [batch[c] for c in data.text_columns]
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        encoded["labels"] = batch[data.label_column]
        return encoded

    return split.map(tokenize, batched=True, remove_columns=split.column_names, desc=desc)
