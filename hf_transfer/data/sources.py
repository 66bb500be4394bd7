"""Where the raw splits come from, for every task: a built-in, a Hub dataset, a directory, or csv/json/parquet files.

What a task does with the columns (decode images, check texts, encode labels) is its loader's job; this module only
turns ``--dataset_name`` / ``--train_dir`` / ``--train_file`` (and their validation twins) into a training split and,
when the source has one, its validation split: the one place that decides which split validates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
from datasets import Dataset
from datasets.exceptions import DatasetGenerationError

from ..config import BUILTIN_PREFIX, DataArguments
from ..exceptions import DataError
from .builtin import builtin_dataset_dir

logger = logging.getLogger(__name__)

Reader = Callable[[str, str], Dataset]  # (path, the flag that named it) -> one split
TABLE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
VALIDATION_SPLIT_NAMES = ("validation", "valid", "val", "test")  # a source's own validation split, in this order

# An image folder's files are one split, every one of them: left to itself, ``datasets``' imagefolder infers splits
# from names, so a file called test0042.png or a class folder called valid/ would silently leave the data.
EVERY_FILE = {"train": "**"}
# ... so a folder holding two of these (train/ and test/) is two splits, not two classes: refused (check_image_folder)
SPLIT_FOLDER_NAMES = frozenset({"train", "training", "validation", "valid", "val", "dev", "test", "testing", "eval"})


@dataclass
class RawSplits:
    """A source's training split and its own validation split if it has one, before any label is read."""

    train: Dataset
    validation: Dataset | None  # None: the loader holds one out of train
    validation_split: str | None  # the source's name for ``validation``
    source: str  # the dataset name, directory or file, as messages and the card name it

    def present(self) -> list[tuple[str, Dataset]]:
        """The splits there are, by role: what a loader checks the columns of."""
        roles = (("train", self.train), ("validation", self.validation))
        return [(name, split) for name, split in roles if split is not None]


def validation_split_name(splits: Mapping[str, Dataset]) -> str | None:
    """The split of a source that validates: the first of :data:`VALIDATION_SPLIT_NAMES` it has."""
    return next((name for name in VALIDATION_SPLIT_NAMES if name in splits), None)


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


def load_raw_splits(args: DataArguments, read_folder: Reader, read_table: Reader = read_table) -> RawSplits:
    """The training and validation splits of any source. A built-in that ships ``train.csv`` (and perhaps a
    validation split's csv) is read as tables; any other built-in is a folder."""
    check_resolved(args)
    splits, source = _named_splits(args, read_folder, read_table)
    validation_split = validation_split_name(splits)
    validation = splits[validation_split] if validation_split else None
    return RawSplits(splits["train"], validation, validation_split, source)


def check_resolved(args: DataArguments) -> None:
    """Loaders read values, never flags: the presets and defaults (the data source among them) are filled once,
    before loading; unresolved arguments would silently miss a built-in dataset's presets."""
    if not (args.dataset_name or args.train_dir or args.train_file):
        raise ValueError(
            "DataArguments are not resolved (no data source is set): pass the config through "
            "hf_transfer.recipe.resolve_config, or the arguments through "
            "hf_transfer.data.builtin.with_data_presets(args, task), before loading."
        )


def _named_splits(args: DataArguments, read_folder: Reader, read_table: Reader) -> tuple[dict[str, Dataset], str]:
    """The source's splits by their own names, and a name for the source."""
    name = args.dataset_name
    if name and name.startswith(BUILTIN_PREFIX):
        folder = builtin_dataset_dir(name)
        if (folder / "train.csv").is_file():
            tables = {split: folder / f"{split}.csv" for split in ("train", *VALIDATION_SPLIT_NAMES)}
            return {split: read_table(str(p), "--dataset_name") for split, p in tables.items() if p.is_file()}, name
        return {"train": read_folder(str(folder), "--dataset_name")}, name
    if name:
        loaded = datasets.load_dataset(name, args.dataset_config_name)
        if "train" not in loaded:
            raise DataError(f"Dataset {name!r} has no 'train' split; it has {list(loaded)}.")
        return dict(loaded), name
    if args.train_dir:
        check_image_folder(args.train_dir, "--train_dir")
        splits = {"train": read_folder(args.train_dir, "--train_dir")}
        if args.validation_dir:
            check_image_folder(args.validation_dir, "--validation_dir")
            splits["validation"] = read_folder(args.validation_dir, "--validation_dir")
        return splits, args.train_dir
    if not args.train_file:
        raise DataError("No data: give --dataset_name, --train_dir or --train_file.")
    splits = {"train": read_table(args.train_file, "--train_file")}
    if args.validation_file:
        splits["validation"] = read_table(args.validation_file, "--validation_file")
    return splits, args.train_file


def check_image_folder(root: str, flag: str) -> None:
    """What the imagefolder reader would drop without a word: a class folder with no file in it (the model would have
    one class fewer: an error for training data; a validation folder may hold fewer classes) and broken links (safe to
    skip: a warning naming them)."""
    folder = Path(root)
    if not folder.is_dir():
        return  # the reader names what is missing
    broken = [path for path in folder.rglob("*") if path.is_symlink() and not path.exists()]
    if broken:
        shown = ", ".join(str(path.relative_to(folder)) for path in broken[:5])
        more = f" and {len(broken) - 5} more" if len(broken) > 5 else ""
        logger.warning("%s %s: skipping %d broken link(s): %s%s.", flag, root, len(broken), shown, more)
    splits = sorted(
        child.name for child in folder.iterdir() if child.is_dir() and child.name.lower() in SPLIT_FOLDER_NAMES
    )
    if len(splits) > 1:  # every file is read as one split (EVERY_FILE): a test/ folder would join the training data
        train = next((name for name in splits if name.lower() in ("train", "training")), splits[0])
        raise DataError(
            f"{flag} {root}: holds the split folders {splits}, not class folders; pass {folder / train} as "
            f"{flag} and the folder to validate on as --validation_dir."
        )
    if flag != "--train_dir" or any(folder.glob("metadata.*")):  # with metadata, folders need not be classes
        return
    empty = sorted(
        child.name
        for child in folder.iterdir()
        if child.is_dir() and not child.name.startswith(".") and not any(p.is_file() for p in child.rglob("*"))
    )
    if empty:
        raise DataError(
            f"{flag} {root}: class folder(s) {empty[:10]} hold no images, so the model would have no such class; add "
            "images or remove the folder(s)."
        )
