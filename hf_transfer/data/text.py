"""Load a labelled text dataset through ``datasets``: Hub name or csv/json/parquet; one text column or a pair.

Labels of all three problem types (single-label, multi-label, regression) are encoded by the code every modality
shares (:mod:`hf_transfer.data.labels`); this module only adds what is particular to text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from ..config import TEXT_CLASSIFICATION, DataArguments
from ..exceptions import DataError
from .builtin import with_data_presets
from .labels import ROW_COLUMN, VALIDATION_SPLIT_NAMES, check_columns, labelled_splits
from .sources import load_raw_splits, no_folders


@dataclass
class TextData:
    train: Dataset
    validation: Dataset
    label_names: list[str] | None  # None for regression
    text_columns: list[str]
    label_column: str
    problem_type: str
    source: str = ""
    row_sources: dict[str, str] = field(default_factory=dict)  # what each split's `_row` ids index (feature cache)


def load_text_data(args: DataArguments, seed: int = 42) -> TextData:
    """Train/validation splits of one or two text columns and labels of the inferred (or given) problem type."""
    args = with_data_presets(args, TEXT_CLASSIFICATION)
    raw, source = load_raw_splits(args, no_folders)
    train = raw["train"]
    validation = next((raw[name] for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    columns = args.text_column_list()
    for split_name, split in (("train", train), ("validation", validation)):
        if split is not None:
            for column in columns:
                check_columns(split, {"--text_column_names": column}, split_name)
            check_columns(split, {"--label_column_name": args.label_column_name}, split_name)
            check_texts(split, columns, split_name)
    splits = labelled_splits(train, validation, args, seed, args.problem_type)
    for split_name, split in (("train", splits.train), ("validation", splits.validation)):
        if len(split) == 0:
            raise DataError(f"The {split_name} split of {source} is empty; nothing to train/evaluate on.")
    return TextData(
        splits.train,
        splits.validation,
        splits.label_names,
        columns,
        args.label_column_name,
        splits.problem_type,
        source,
        splits.row_sources,
    )


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


def tokenize_text_dataset(split: Dataset, tokenizer, data: TextData, max_length: int, desc: str) -> Dataset:
    """Truncate to ``max_length``; padding is left to the collator (dynamic, per batch). Keeps the row ids."""

    def tokenize(batch: dict[str, list]) -> dict:
        texts = [batch[c] for c in data.text_columns]
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        encoded["labels"] = batch[data.label_column]
        return encoded

    dropped = [c for c in split.column_names if c != ROW_COLUMN]
    return split.map(tokenize, batched=True, remove_columns=dropped, desc=desc)
