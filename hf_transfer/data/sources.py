"""Where the raw splits come from, for every task: a built-in, a Hub dataset, a directory, or csv/json/parquet files.

What a task does with the columns (decode images, check texts, encode labels) is its loader's job; this module only
turns ``--dataset_name`` / ``--train_dir`` / ``--train_file`` (and their validation twins) into named splits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict
from datasets.exceptions import DatasetGenerationError

from ..config import BUILTIN_PREFIX, DataArguments
from ..exceptions import DataError
from .builtin import builtin_dataset_dir
from .labels import VALIDATION_SPLIT_NAMES

Reader = Callable[[str, str], Dataset]  # (path, the flag that named it) -> one split
TABLE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


def read_table(path: str, flag: str) -> Dataset:
    """A csv/json/jsonl/parquet file as one split, through the matching ``datasets`` builder."""
    builder = TABLE_BUILDERS.get(Path(path).suffix.lower())
    if builder is None:
        raise DataError(f"{flag}: {path!r} must be .csv, .json, .jsonl or .parquet.")
    if os.path.getsize(path) == 0:
        raise DataError(f"{flag}: {path!r} is empty (0 bytes); it needs a header and at least one example.")
    try:
        table = datasets.load_dataset(builder, data_files=path, split="train")
    except DatasetGenerationError as err:
        reason = err.__cause__ or err
        raise DataError(f"{flag}: cannot read {path!r} as {builder} ({type(reason).__name__}: {reason}).") from None
    except ValueError as err:  # "Instruction 'train' corresponds to no data!": a header without rows
        if "no data" not in str(err):
            raise
        table = None
    if table is None or len(table) == 0:
        raise DataError(f"{flag}: {path!r} holds no examples (a header only?); add rows or leave the flag out.")
    return table


def no_folders(path: str, flag: str) -> Dataset:
    raise DataError(f"{flag}: this task reads tables (--train_file) or datasets (--dataset_name), not directories.")


def load_raw_splits(
    args: DataArguments, read_folder: Reader, read_table: Reader = read_table
) -> tuple[DatasetDict, str]:
    """The raw splits of any source, and a name for it. A built-in that ships ``train.csv`` (and perhaps a
    validation split's csv) is read as tables; any other built-in is a folder."""
    name = args.dataset_name
    if name and name.startswith(BUILTIN_PREFIX):
        folder = builtin_dataset_dir(name)
        if (folder / "train.csv").is_file():
            tables = {split: folder / f"{split}.csv" for split in ("train", *VALIDATION_SPLIT_NAMES)}
            splits = {split: read_table(str(p), "--dataset_name") for split, p in tables.items() if p.is_file()}
            return DatasetDict(splits), name
        return DatasetDict(train=read_folder(str(folder), "--dataset_name")), name
    if name:
        loaded = datasets.load_dataset(name, args.dataset_config_name)
        if "train" not in loaded:
            raise DataError(f"Dataset {name!r} has no 'train' split; it has {list(loaded)}.")
        return loaded, name
    if args.train_dir:
        splits = {"train": read_folder(args.train_dir, "--train_dir")}
        if args.validation_dir:
            splits["validation"] = read_folder(args.validation_dir, "--validation_dir")
        return DatasetDict(splits), args.train_dir
    if not args.train_file:
        raise DataError("No data: give --dataset_name, --train_dir or --train_file.")
    splits = {"train": read_table(args.train_file, "--train_file")}
    if args.validation_file:
        splits["validation"] = read_table(args.validation_file, "--validation_file")
    return DatasetDict(splits), args.train_file
