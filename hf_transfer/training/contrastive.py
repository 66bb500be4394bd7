"""Phase 1 of the contrastive strategy: fine-tune the body on pairs of labelled examples before its features are
encoded for the head (SetFit, Tunstall et al. 2022, https://arxiv.org/abs/2209.11055).

SetFit draws pairs of examples (``sampling_strategy="oversampling"``: every positive and negative pair, the smaller
set repeated to the larger's size) and trains sentence-transformers' ``CosineSimilarityLoss``: the squared error
between the cosine of the two embeddings and 1 (same class) or 0 (different). Here every batch of labelled examples
gives *all* its pairs — one forward pass of b examples scores b(b-1)/2 pairs, where SetFit's batch of b pairs costs 2b
passes — with positives and negatives weighted equally (the balance SetFit's oversampling buys). The loss is the same
function of each pair; only the pairs per forward pass differ.

Runs in every process of a distributed run alike (same seed, same examples): few-label data makes it seconds.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from ..exceptions import ConfigError
from ..models.pooled_text import MeanPooledClassifier
from ..models.prefix import split_model
from .run_types import PreparedRun

logger = logging.getLogger(__name__)

WARMUP = 0.1  # share of the steps the learning rate warms up over (SetFit's warmup_proportion)
WEIGHT_DECAY = 0.01  # SetFit's


def pairwise_cosine_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between each pair's cosine similarity and its target (1: same class, 0: different) over
    every pair of the batch, the positive and the negative pairs' means weighted equally."""
    normalised = F.normalize(embeddings, dim=-1)
    first, second = torch.triu_indices(len(labels), len(labels), offset=1, device=embeddings.device)
    cosine = (normalised[first] * normalised[second]).sum(-1)
    same = labels[first] == labels[second]
    errors = (cosine - same.to(cosine.dtype)) ** 2
    means = [errors[kind].mean() for kind in (same, ~same) if kind.any()]
    return torch.stack(means).mean()


def run_contrastive_phase(prepared: PreparedRun) -> None:
    """Train the body of ``prepared``'s model on the pairs of its labelled examples, if its strategy has such a
    phase; then freeze it again, so the frozen-feature cache encodes the tuned body. Recorded in the run record."""
    task, training = prepared.task, prepared.training
    phase = prepared.strategy.body_phase(len(task.train_dataset))
    if phase is None:
        return
    model, view = task.model, task.view
    if not isinstance(model, MeanPooledClassifier):
        raise ConfigError(
            "--strategy contrastive trains the mean-pooled sentence embedding: leave --pooling unset (or mean)."
        )
    split = split_model(model, view, None)
    body = list(view.parameters(view.body()))
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(training.seed)
    loader = DataLoader(
        task.train_dataset,
        batch_size=phase.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=task.data_collator,
    )
    steps = phase.epochs * len(loader)
    optimizer = torch.optim.AdamW(body, lr=phase.learning_rate, weight_decay=WEIGHT_DECAY)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    device = training.device
    model.to(device)
    model.train()
    for param in body:
        param.requires_grad_(True)
    losses: list[float] = []
    try:
        for _ in range(phase.epochs):
            for batch in loader:
                labels = batch.pop("labels").to(device)
                if len(labels) < 2:  # a last batch of one example has no pair
                    continue
                embeddings = split.encode({name: value.to(device) for name, value in batch.items()})["features"]
                loss = pairwise_cosine_loss(embeddings, labels)
                loss.backward()
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
    finally:
        for param in body:
            param.requires_grad_(False)
        model.eval()
    pairs = sum(n * (n - 1) // 2 for n in _batch_sizes(len(task.train_dataset), phase.batch_size)) * phase.epochs
    runtime = time.perf_counter() - started
    task.record.body_phase = (
        f"contrastive phase: {phase.epochs} epochs of {len(task.train_dataset)} labelled examples in batches of "
        f"{phase.batch_size} ({len(losses)} steps, {pairs:,} pairs), body learning rate {phase.learning_rate:g}, "
        f"cosine-similarity loss {_mean(losses[: len(loader)]):.3f} → {_mean(losses[-len(loader) :]):.3f} "
        f"(first → last epoch), {runtime:.1f} s"
    )
    logger.info("%s.", task.record.body_phase[0].upper() + task.record.body_phase[1:])


def _batch_sizes(examples: int, batch: int) -> list[int]:
    return [batch] * (examples // batch) + ([examples % batch] if examples % batch else [])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
