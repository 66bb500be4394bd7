"""Load a labelled text dataset through ``datasets``: Hub name or csv/json/parquet; one text column or a pair.

Labels of all three problem types (single-label, multi-label, regression) are encoded by the code every modality
shares (:mod:`hf_transfer.data.labels`); this module only adds what is particular to text.
"""

from __future__ import annotations

import dataclasses

from datasets import Dataset

from ..config import DataArguments
from ..exceptions import DataError
from .labels import ROW_COLUMN, check_columns, labelled_splits
from .sources import load_raw_splits, no_folders
from .splits import LabelledData
from .unlabeled import attach_unlabeled, read_unlabeled, split_off_empty_labels, unlabeled_description


def load_text_data(args: DataArguments, seed: int = 42, chooses_nothing_up_to: int = 0) -> LabelledData:
    """Train/validation splits of one or two text columns and labels of the inferred (or given) problem type.

    ``args`` are resolved (presets and defaults filled, as :func:`hf_transfer.recipe.resolve_config` does);
    ``chooses_nothing_up_to``: see :func:`~hf_transfer.data.labels.labelled_splits`."""
    raw = load_raw_splits(args, no_folders)
    raw.train, unlabeled = split_off_empty_labels(raw.train, args.label_column_name, args)
    columns = args.text_column_list()
    for split_name, split in raw.present():
        for column in columns:
            check_columns(split, {"--text_column_names": column}, split_name)
        check_columns(split, {"--label_column_name": args.label_column_name}, split_name)
        check_texts(split, columns, split_name)
    data = dataclasses.replace(
        labelled_splits(raw.train, raw.validation, args, seed, args.problem_type, chooses_nothing_up_to),
        text_columns=columns,
        source=raw.source,
        validation_split=raw.validation_split,
    )
    data.require_examples()
    unlabeled = unlabeled if unlabeled is not None else read_unlabeled(args, None)
    if unlabeled is not None:

        def checked(split: Dataset) -> Dataset:
            check_texts(split, columns, "unlabelled")
            return split

        data = attach_unlabeled(data, unlabeled, unlabeled_description(args), args, seed, checked)
    return data


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


def tokenize_text_dataset(
    split: Dataset, tokenizer, data: LabelledData, max_length: int, desc: str, label_column: str | None = None
) -> Dataset:
    """Truncate to ``max_length``; padding is left to the collator (dynamic, per batch). Keeps the row ids. The
    labels come from ``label_column`` (default: the data's)."""
    label_column = label_column or data.label_column

    def tokenize(batch: dict[str, list]) -> dict:
        texts = [batch[c] for c in data.text_columns]
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        encoded["labels"] = batch[label_column]
        return encoded

    dropped = [c for c in split.column_names if c != ROW_COLUMN]
    if len(split) == 0:  # no validation split (the small-data protocol): ``map`` would not add the columns
        return Dataset.from_dict({name: [] for name in (*tokenizer.model_input_names, "labels", ROW_COLUMN)})
    return split.map(tokenize, batched=True, remove_columns=dropped, desc=desc)
