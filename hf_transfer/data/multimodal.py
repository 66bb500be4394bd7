"""Load image+text examples with one label each ("multimodal-classification"), and turn them into model-ready batches.

Sources are the image loader's (a Hub name, an imagefolder, a csv/json/parquet of image paths, a built-in), plus one
or two text columns: for an imagefolder they come from its ``metadata.csv`` (``file_name`` plus the text columns, and
optionally the label; otherwise the class folders are the labels). Every example must have an image and non-empty
text: a gap is reported with its row now rather than as a shape error inside a batch later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import torch
from datasets import Dataset, Value
from datasets import Image as ImageFeature

from ..config import MULTI_LABEL, SINGLE_LABEL, DataArguments
from ..exceptions import DataError
from .labels import check_columns, infer_problem_type
from .loading import _load_table, _read_imagefolder, labelled_image_data
from .sources import load_raw_splits
from .splits import LabelledData
from .text import check_texts
from .transforms import to_model_mode

TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
METADATA_FILES = ("metadata.csv", "metadata.jsonl", "metadata.parquet")


def load_multimodal_data(args: DataArguments, seed: int = 42) -> LabelledData:
    """Train/validation splits with an image column, one or two text columns and a ``ClassLabel`` label column.

    ``args`` are resolved (presets and defaults filled, as :func:`hf_transfer.recipe.resolve_config` does)."""
    if args.problem_type not in (None, SINGLE_LABEL):
        raise DataError(
            f"--problem_type {args.problem_type}: multimodal classification supports single-label classification only."
        )
    image, label, texts = args.image_column_name, args.label_column_name, args.text_column_list()
    raw = load_raw_splits(
        args,
        lambda path, flag: _load_described_folder(path, flag, label),
        lambda path, flag: _load_table(path, args, flag),
    )
    for split_name, split in raw.present():
        check_columns(split, {"--image_column_name": image}, split_name)
        for column in texts:
            check_columns(split, {"--text_column_names": column}, split_name)
        check_columns(split, {"--label_column_name": label}, split_name)
        check_texts(split, texts, split_name)
        _check_images_present(split, image, split_name, raw.source)
        _check_single_label(split, label, split_name)
    return labelled_image_data(raw, args, seed, SINGLE_LABEL, text_columns=texts)


def _load_described_folder(path: str, flag: str, label_column: str) -> Dataset:
    """An imagefolder whose metadata file holds the text; the label is a metadata column, else each image's folder.

    ``datasets`` stops inferring class-folder labels as soon as a metadata file exists, so they are restored here.
    """
    folder = _read_imagefolder(path, flag)
    if set(folder.column_names) <= {"image", "label"}:
        raise DataError(
            f"{flag}: {path!r} has no metadata file with the text. Add a {' / '.join(METADATA_FILES)} with a "
            "'file_name' column (the image path relative to it) and the text column(s), e.g. "
            "'file_name,text' then 'cat/001.jpg,a cat on a mat'."
        )
    metadata = next((Path(path, name) for name in METADATA_FILES if Path(path, name).is_file()), Path(path))
    _check_images_present(folder, "image", flag.removeprefix("--"), str(metadata))
    if label_column in folder.column_names:
        return folder
    root = Path(path).resolve()
    parents = [Path(v["path"]).parent for v in folder.cast_column("image", ImageFeature(decode=False))["image"]]
    if any(parent.resolve() == root for parent in set(parents)):
        raise DataError(
            f"{flag}: {metadata} has no {label_column!r} column and some images are not in class subfolders. Add "
            f"the label to the metadata, put each image in a folder named after its class, or pass "
            f"--label_column_name with the metadata column that holds it."
        )
    return folder.add_column(label_column, [parent.name for parent in parents])


def _check_images_present(split: Dataset, column: str, split_name: str, where: str) -> None:
    """A row with no image at all (None, or neither bytes nor a path) is named with its row index."""
    if not isinstance(split.features[column], ImageFeature):
        return  # a path column of a table is resolved (and checked) by _load_table; other types fail in verify_images
    offset = 0
    for batch in split.select_columns([column]).with_format("arrow").iter(batch_size=10_000):
        values = batch.column(column)
        path = pc.struct_field(values, "path")
        missing = pc.or_kleene(
            pc.is_null(values),
            pc.and_kleene(pc.is_null(pc.struct_field(values, "bytes")), pc.fill_null(pc.equal(path, ""), True)),
        )
        missing = pc.fill_null(missing, True)
        hits = pc.indices_nonzero(missing).to_pylist()
        if hits:
            raise DataError(
                f"Row {offset + hits[0]} of the {split_name} data ({where}): column {column!r} has no image. "
                "Every example needs an image; fill or drop such rows."
            )
        offset += batch.num_rows


def _check_single_label(split: Dataset, column: str, split_name: str) -> None:
    feature = split.features[column]
    only = "multimodal classification supports single-label classification only (one class per example)"
    if infer_problem_type(split, column) == MULTI_LABEL:
        raise DataError(f"Column {column!r} of the {split_name} data holds label lists: {only}.")
    if isinstance(feature, Value) and feature.dtype.startswith("float"):
        values = [v for v in split.unique(column) if v is not None]
        if any(not float(v).is_integer() for v in values):
            raise DataError(
                f"Column {column!r} of the {split_name} data holds non-integer numbers (a regression target): {only}."
            )


def tokenize_multimodal(split: Dataset, tokenizer, text_columns: list[str], max_length: int, desc: str) -> Dataset:
    """Replace the text column(s) with token ids, truncated to ``max_length``; padding is left to the collator.

    Only the text columns are read (``input_columns``), so the images are not decoded here.
    """
    if not 1 <= len(text_columns) <= 2:
        raise ValueError(f"One text column or a pair, got {text_columns}.")

    def tokenize(*texts: list[str]) -> dict:
        return dict(tokenizer(*texts, truncation=True, max_length=max_length))

    return split.map(tokenize, batched=True, input_columns=list(text_columns), remove_columns=text_columns, desc=desc)


def multimodal_transform_fn(
    transform: Callable,
    image_column: str,
    label_column: str,
    channels: int = 3,
    passthrough: Iterable[str] = (),
) -> Callable:
    """A batched function for ``Dataset.with_transform``: images → ``pixel_values``, labels → ``labels``; token ids
    and the ``passthrough`` columns (e.g. indices of cached features) pass unchanged. Without an image column in the
    batch (``with_transform(..., columns=...)`` left it out, say for cached image features) no pixels are made."""
    keep = tuple(dict.fromkeys((*TOKEN_KEYS, *passthrough)))

    def apply(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {}
        if image_column in batch:
            out["pixel_values"] = [transform(to_model_mode(image, channels)) for image in batch[image_column]]
        if label_column in batch:
            out["labels"] = batch[label_column]
        out.update({key: batch[key] for key in keep if key in batch})
        return out

    return apply


@dataclass
class MultimodalCollator:
    """Stack image tensors / cached embeddings, pad token ids per batch, and make ``labels`` a long tensor.

    Any other key (e.g. a passthrough feature index) is stacked or turned into a tensor as is.
    """

    tokenizer: Any = None
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("MultimodalCollator got an empty batch.")
        keys = list(dict.fromkeys(key for feature in features for key in feature))
        for key in keys:
            lacking = sum(key not in feature for feature in features)
            if lacking:
                raise ValueError(
                    f"Mismatched batch: {lacking} of {len(features)} examples lack {key!r} that the others have; "
                    "every example of a batch must carry the same modalities."
                )
        batch: dict[str, torch.Tensor] = {}
        token_keys = [key for key in TOKEN_KEYS if key in keys]
        if token_keys:
            if self.tokenizer is None:
                raise ValueError(f"MultimodalCollator needs a tokenizer to pad {token_keys}.")
            from transformers.data.data_collator import pad_without_fast_tokenizer_warning

            padded = pad_without_fast_tokenizer_warning(
                self.tokenizer,
                [{key: feature[key] for key in token_keys} for feature in features],
                padding=True,
                pad_to_multiple_of=self.pad_to_multiple_of,
                return_tensors="pt",
            )
            batch.update(padded)
        for key in keys:
            if key in TOKEN_KEYS:
                continue
            values = [feature[key] for feature in features]
            if key == "labels":
                batch[key] = torch.tensor([int(value) for value in values], dtype=torch.long)
            elif isinstance(values[0], torch.Tensor):
                batch[key] = torch.stack(values)
            else:
                try:
                    batch[key] = torch.stack([torch.as_tensor(value) for value in values])
                except (TypeError, ValueError, RuntimeError) as err:
                    raise ValueError(f"Cannot batch {key!r} into a tensor: {err}") from err
        return batch
