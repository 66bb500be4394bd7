"""Frozen features are computed once: a frozen prefix of the model is encoded once per example, ever, and the rest
of the network trains on what it produced.

When the strategy leaves a *prefix* of the backbone frozen — the whole body for ``linear_probe``, the stem and the
first N blocks for ``freeze`` — that prefix is a fixed function of its input (it is kept in eval mode: batch-norm
statistics, dropout and stochastic depth frozen), provided the inputs are not augmented. Its outputs are then encoded
once and kept on disk (:class:`~hf_transfer.training.feature_store.FeatureStore` under ``HF_TRANSFER_CACHE``), keyed
by the prefix's *content*, where it is cut, the preprocessing, the dataset the rows come from and the storage dtype.
Entries hold rows (shards), so a later run on another subset of the same data (another size or seed of a study, a
smaller ``--max_train_samples``) encodes only the rows no run has encoded before.

During training the model's forward is swapped for one that reads the cached tensors and runs only the rest of the
network (:class:`~hf_transfer.models.prefix.PrefixSplit`); the model itself is untouched, so the saved model is the
complete network, and its predictions equal those computed from the cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers.loss.loss_utils import ForSequenceClassificationLoss
from transformers.modeling_outputs import SequenceClassifierOutput

from ..data.unlabeled import UNLABELED
from ..models.prefix import PrefixSplit, split_model
from ..run_record import FrozenFeatures
from ..strategies.base import keep_in_eval
from .feature_store import FeatureStore, feature_key, tensor_content_hash
from .interrupts import stopping_in
from .run_types import FeatureInputs, PreparedRun

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation")
DTYPES = {"float32": torch.float32, "float16": torch.float16}
MAX_SHARDS = 1000  # shards of one key are numbered 0, 1, ...; a run adds at most one per split
ITEMS = "items"  # in each shard: the ids of the items (rows, images, texts) whose features it holds


class CannotCache(Exception):
    """This run's frozen prefix cannot be cached after all (the message says why); it runs uncached."""


@dataclass
class FrozenPrefix:
    """Where the model's frozen prefix ends, and how to run the model from there."""

    split: PrefixSplit
    parameter_names: list[str]  # the prefix's parameters (view names), for its content hash


@dataclass
class CacheReport:
    """What the cache did, per split: examples encoded now and reused from earlier runs."""

    encoded: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    where: str = ""

    def metrics(self) -> dict[str, int]:
        return {
            "frozen_features_encoded": sum(self.encoded.values()),
            "frozen_features_reused": sum(self.reused.values()),
        }


def find_frozen_prefix(prepared: PreparedRun) -> FrozenPrefix | None:
    """The frozen prefix of a prepared run's model, or None: the stem and the longest run of frozen blocks after it
    (the whole body: the pooled features), where the strategy keeps that set fixed for the whole run."""
    view, model = prepared.context.view, prepared.task.model
    if prepared.model is not model or prepared.strategy.trainable_over_run(prepared.context) is not None:
        return None  # wrapped (adapters in every block) or a trainable set that changes during the run
    parameters = dict(model.named_parameters())
    if not view.stem or any(parameters[name].requires_grad for name in view.stem):
        return None
    depth = 0
    while depth < view.num_blocks and not any(parameters[n].requires_grad for n in view.blocks[depth]):
        depth += 1
    whole_body = depth == view.num_blocks
    split = split_model(model, view, None if whole_body else depth)
    if split is None:
        return None
    names = view.body() if whole_body else [n for group in (view.stem, *view.blocks[:depth]) for n in group]
    return FrozenPrefix(split, names)


def why_not_cached(prepared: PreparedRun, prefix: FrozenPrefix | None) -> str | None:
    """The one-line reason the frozen-feature cache does not apply to this run, or None when it does."""
    inputs = prepared.task.feature_inputs
    if not prepared.config.run.cache_frozen_features:
        return "--cache_frozen_features is off"
    if len(prepared.task.train_dataset) == 0:
        return "no labelled example trains (zero-shot)"
    if inputs is None:
        return None if prefix is None else "this task does not expose its inputs to the cache"
    if prefix is None:
        return "no frozen prefix (the strategy trains the first block, wraps the model, or changes what trains)"
    if inputs.augmented:
        return "training inputs are augmented, so the frozen features change every epoch: pass --no_augment to cache"
    if prepared.strategy.needs_raw_inputs:
        return f"--strategy {prepared.strategy.name} reads the raw inputs during training"
    if UNLABELED in inputs.row_ids and prepared.strategy.self_training_head() is None:
        return "self-training through the Trainer adds pseudo-labelled examples to the training set each round"
    return None


def cache_frozen_prefix(prepared: PreparedRun, prefix: FrozenPrefix, store: FeatureStore | None = None) -> CacheReport:
    """Encode (or load) the frozen prefix's outputs for both splits, and make the run train on them: the task's
    datasets become the cached tensors and the model's forward runs only the rest of the network."""
    task, training, inputs = prepared.task, prepared.training, prepared.task.feature_inputs
    store = store or FeatureStore()
    dtype = prepared.config.run.feature_cache_dtype
    model, split = task.model, prefix.split
    probe = inputs.model_inputs("train", list(range(min(2, len(inputs.row_ids["train"])))))
    problem = split.check(model, probe)
    if problem:
        raise CannotCache(f"the model cut at its {split.description} does not reproduce it ({problem})")
    key_parts = {
        "model": tensor_content_hash(_prefix_tensors(model, prefix)),
        "architecture": type(getattr(model, "timm_model", model)).__name__,
        "cut": split.description,
        "preprocessing": inputs.preprocessing,
        "dtype": dtype,
    }
    report = CacheReport(where=_where(store))
    tables = {}
    splits = [name for name in (*SPLITS, UNLABELED) if name in inputs.row_ids]
    with training.main_process_first(desc="encoding frozen features"):
        for name in splits:
            rows = inputs.row_ids[name]
            if not rows:  # no validation split (the small-data protocol): nothing to encode
                tables[name] = {f: t[:0] for f, t in tables["train"].items()}
                report.encoded[name] = report.reused[name] = 0
                continue
            features, index, report.encoded[name], report.reused[name] = cached_features(
                store,
                {**key_parts, "rows_of": inputs.row_sources[name]},
                rows,
                lambda positions, name=name: _encode(model, split, inputs, name, positions, training, name),
                dtype,
                f"{split.description} of {key_parts['architecture']}, {name} rows",
            )
            tables[name] = {f: t[index] for f, t in features.items()}
    task.train_dataset = CachedRows(tables["train"], inputs.labels["train"])
    task.eval_dataset = CachedRows(tables["validation"], inputs.labels["validation"])
    if UNLABELED in tables:  # self-training's pool: its labels are what the source carried (-1: none)
        prepared.unlabeled = CachedRows(tables[UNLABELED], inputs.labels[UNLABELED])
    task.data_collator = collate_cached
    model.forward = _cached_forward(model, split)  # an instance attribute: `del model.forward` restores the class's
    prepared.cached_split = split
    task.record.frozen_features = FrozenFeatures(split.description, dtype, **report.metrics())
    logger.info(
        "Frozen-feature cache (%s, %s, %s): %s.",
        split.description,
        dtype,
        report.where,
        "; ".join(f"{n} {report.encoded[n]} encoded, {report.reused[n]} reused" for n in splits),
    )
    return report


def release_cached_forward(model: nn.Module) -> None:
    """Give the model its own forward back (after training and evaluation on cached features)."""
    model.__dict__.pop("forward", None)


def keep_prefix_in_eval(prefix: FrozenPrefix) -> None:
    """A frozen prefix runs in eval mode, cached or not: a fixed function of its input, so both paths agree."""
    keep_in_eval(prefix.split.prefix)


class CachedRows(torch.utils.data.Dataset):
    """A split as cached tensors (one row per example, in the split's order) and its labels."""

    def __init__(self, tensors: dict[str, torch.Tensor], labels: list):
        self.tensors, self.labels = tensors, list(labels)  # a plain list: a `datasets` column reads arrow per item

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**{k: v[index] for k, v in self.tensors.items()}, "labels": self.labels[index]}


def collate_cached(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack the cached tensors (in float32, whatever they were stored in); class ids stay integers."""
    batch = {k: torch.stack([e[k] for e in examples]) for k in examples[0] if k != "labels"}
    batch = {k: v.float() if v.is_floating_point() else v for k, v in batch.items()}
    if "attention_mask" in batch:  # token states are stored padded to --max_seq_length: pad per batch, as uncached
        length = int(batch["attention_mask"].sum(dim=1).max())
        batch = {k: v[:, :length] if k in ("hidden", "attention_mask") else v for k, v in batch.items()}
    labels = [e["labels"] for e in examples]
    batch["labels"] = torch.tensor(labels, dtype=torch.long if isinstance(labels[0], int) else torch.float32)
    return batch


def _cached_forward(model: nn.Module, split: PrefixSplit):
    def forward(labels: torch.Tensor | None = None, **cached: torch.Tensor) -> SequenceClassifierOutput:
        logits = split.rest(cached)
        loss = None if labels is None else ForSequenceClassificationLoss(labels, logits, model.config)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    return forward


def _prefix_tensors(model: nn.Module, prefix: FrozenPrefix):
    """The prefix's parameters (by name) and buffers (batch-norm statistics): what its outputs depend on."""
    parameters = dict(model.named_parameters())
    yield from ((name, parameters[name]) for name in prefix.parameter_names)
    for index, module in enumerate(prefix.split.prefix):
        yield from ((f"{index}.{name}", buffer) for name, buffer in module.named_buffers())


def cached_features(
    store: FeatureStore,
    parts: dict[str, Any],
    items: list[int],
    encode: Callable[[list[int]], dict[str, torch.Tensor]],
    dtype: str,
    description: str,
) -> tuple[dict[str, torch.Tensor], list[int], int, int]:
    """Features of every distinct item (a row id, or a hash of an image or a text), reusing what any run stored under
    ``parts`` and encoding the rest (``encode(positions)``, positions of first appearances) as one new shard.

    Returns (the distinct items' features, each position's index into them, items encoded now, items reused).

    Runs under the shards' file lock: a study's cells run in parallel processes and share rows (one validation set,
    nested training subsets), so a cell that misses rows another cell is encoding waits and reuses them."""
    found: dict[int, tuple[dict[str, torch.Tensor], int]] = {}
    first = {item: position for position, item in reversed(list(enumerate(items)))}
    distinct = list(first)
    with store.exclusive(feature_key(**parts), description):
        shard = 0
        while shard < MAX_SHARDS and (tensors := store.load(feature_key(**parts, shard=shard))) is not None:
            found.update({item: (tensors, i) for i, item in enumerate(tensors.pop(ITEMS).tolist())})
            shard += 1
        missing = [item for item in distinct if item not in found]
        if missing:
            encoded = encode([first[item] for item in missing])
            encoded[ITEMS] = torch.tensor(missing, dtype=torch.int64)
            stored = store.save(feature_key(**parts, shard=shard), encoded, description, DTYPES[dtype])
            found.update({item: (stored, i) for i, item in enumerate(stored.pop(ITEMS).tolist())})
    fields = next(iter(found.values()))[0].keys()
    features = {f: torch.stack([found[item][0][f][found[item][1]] for item in distinct]) for f in fields}
    where = {item: i for i, item in enumerate(distinct)}
    return features, [where[item] for item in items], len(missing), len(distinct) - len(missing)


def item_id(key: object) -> int:
    """A stable 63-bit id of an item's identity (an image path or digest, a token sequence): what shards store."""
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little") >> 1


@torch.no_grad()
def _encode(
    model: nn.Module,
    split: PrefixSplit,
    inputs: FeatureInputs,
    name: str,
    positions: list[int],
    training,
    desc: str,
) -> dict[str, torch.Tensor]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = training.per_device_eval_batch_size
    order = longest_first(positions, inputs.lengths(name)) if inputs.lengths is not None else positions
    chunks: dict[str, list[torch.Tensor]] = {}
    done = 0
    try:
        with stopping_in(lambda: f"while encoding the frozen {desc} features ({done:,} of {len(order):,} done)"):
            for start in tqdm(range(0, len(order), batch_size), desc=f"encoding frozen features ({desc})"):
                batch = inputs.model_inputs(name, order[start : start + batch_size])
                batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
                for key, value in split.encode(batch).items():
                    chunks.setdefault(key, []).append(value.detach().cpu())
                done = min(start + batch_size, len(order))
    finally:
        model.train(was_training)
    return {key: in_order_of(torch.cat(values), order, positions) for key, values in chunks.items()}


def longest_first(positions: list[int], lengths: list[int]) -> list[int]:
    """``positions`` longest first, so that each batch holds texts of about one length: a pooled split encodes only
    its batch's longest text (1,000 review snippets: 9 s against 42 s at the 128 tokens they were padded to), and a
    batch that does not fit in memory is the first. As sentence-transformers' ``encode`` sorts its sentences."""
    return sorted(positions, key=lambda position: -lengths[position])


def in_order_of(rows: torch.Tensor, order: list[int], positions: list[int]) -> torch.Tensor:
    """``rows``, one for each of ``order``'s positions, put in the order of ``positions`` (the same set). Already in
    it (images are not sorted), they are returned as they are: no copy of a split's features."""
    if order == positions:
        return rows
    rank = {position: i for i, position in enumerate(order)}
    return rows[torch.tensor([rank[position] for position in positions], dtype=torch.long)]


def _where(store: FeatureStore) -> str:
    try:
        return str(store.root)
    except OSError:
        return "in memory"
