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

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from transformers import Trainer, get_linear_schedule_with_warmup

from ..data.unlabeled import UNLABELED
from ..exceptions import ConfigError
from ..models.pooled_text import MeanPooledClassifier
from ..models.prefix import PrefixSplit, split_model
from ..strategies.base import ContrastivePhase
from .interrupts import stopping_in
from .linear_head import fit_linear_head
from .prefix_cache import in_order_of, longest_first
from .run_types import PreparedRun
from .self_training import self_train, settings_for

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
    phase (and, with unlabelled examples and ``--contrastive_pseudo_labels``, on their pseudo-labels' pairs too);
    then freeze it again, so the frozen-feature cache encodes the tuned body. Recorded in the run record."""
    task = prepared.task
    phase = prepared.strategy.body_phase(len(task.train_dataset))
    if phase is None:
        return
    if not isinstance(task.model, MeanPooledClassifier):
        raise ConfigError(
            "--strategy contrastive trains the mean-pooled sentence embedding: leave --pooling unset (or mean)."
        )
    split = split_model(task.model, task.view, None)
    started = time.perf_counter()
    losses, per_epoch = _train_on_pairs(prepared, split, task.train_dataset, phase.epochs, phase)
    anchors = len(prepared.anchors.rows) if prepared.anchors is not None else 0
    batches = _batch_sizes(len(task.train_dataset), phase.batch_size)
    pairs = sum((n + anchors) * (n + anchors - 1) // 2 for n in batches) * phase.epochs
    with_anchors = f" and the {anchors} label-description examples in each" if anchors else ""
    task.record.body_phase = (
        f"contrastive phase: {phase.epochs} epochs of {len(task.train_dataset)} labelled examples in batches of "
        f"{phase.batch_size}{with_anchors} ({len(losses)} steps, {pairs:,} pairs), body learning rate "
        f"{phase.learning_rate:g}, "
        f"cosine-similarity loss {_mean(losses[:per_epoch]):.3f} → {_mean(losses[-per_epoch:]):.3f} "
        f"(first → last epoch), {time.perf_counter() - started:.1f} s"
    )
    if phase.pseudo_labels and task.with_pseudo_labels is not None:
        task.record.body_phase += f"; then {_pseudo_labelled_phase(prepared, split, phase, len(losses))}"
    logger.info("%s.", task.record.body_phase[0].upper() + task.record.body_phase[1:])


def _pseudo_labelled_phase(prepared: PreparedRun, split: PrefixSplit, phase: ContrastivePhase, steps: int) -> str:
    """A second phase on the pairs of the labelled and the pseudo-labelled examples (pseudo-labels feeding the pairs,
    issue 20): the tuned body encodes both sets, self-training on those features picks the pseudo-labels (its rounds
    kept by cross-validation on the labelled examples, :func:`~.self_training.self_train`), and the body trains on
    for about as many steps as the first phase took (whole passes, at least one). What it did, for the record."""
    task, training = prepared.task, prepared.training
    started = time.perf_counter()
    labels = np.asarray(task.labels["train"])
    features = _encode(split, task.train_dataset, task.data_collator, training.device)
    unlabeled = _encode(split, task.unlabeled_dataset, task.data_collator, training.device)
    truth = np.asarray(task.feature_inputs.labels.get(UNLABELED, [-1] * len(unlabeled)))
    wanted = prepared.strategy.closed_form_head()
    head = fit_linear_head(features, labels, len(task.label_names), wanted and wanted.c, training.seed)
    settings = settings_for(prepared.config.run, labels)
    _, report = self_train(features, labels, unlabeled, truth, task.label_names, head.c, settings, training.seed)
    indices, pseudo = report.pseudo_labels
    if len(indices) == 0:
        return f"no pseudo-labelled phase ({report.line()})"
    dataset = task.with_pseudo_labels(indices.tolist(), pseudo.tolist())
    epochs = max(1, round(steps / -(-len(dataset) // phase.batch_size)))
    losses, _ = _train_on_pairs(prepared, split, dataset, epochs, phase)
    known = truth[indices] >= 0
    accuracy = f", {float((truth[indices][known] == pseudo[known]).mean()):.3f} correct" if known.any() else ""
    return (
        f"{len(losses)} steps on the pairs of the labelled and {len(indices)} pseudo-labelled examples{accuracy} "
        f"(from the {report.kept} self-training round{'s' * (report.kept != 1)} that cross-validation kept on the "
        f"tuned body's features), "
        f"{time.perf_counter() - started:.1f} s"
    )


def _train_on_pairs(
    prepared: PreparedRun, split: PrefixSplit, dataset, epochs: int, phase: ContrastivePhase
) -> tuple[list[float], int]:
    """``epochs`` passes of the body over ``dataset``'s batches, each giving all its pairs: the loss of every step and
    the steps an epoch."""
    task, training = prepared.task, prepared.training
    body = list(task.view.parameters(task.view.body()))
    generator = torch.Generator().manual_seed(training.seed)
    anchors = prepared.anchors.rows if prepared.anchors is not None else []

    def collate(rows: list[dict]) -> dict:  # each batch's examples and every class's description (label anchors)
        return task.data_collator([*rows, *(dict(anchor) for anchor in anchors)])

    loader = DataLoader(dataset, batch_size=phase.batch_size, shuffle=True, generator=generator, collate_fn=collate)
    steps = epochs * len(loader)
    optimizer = phase_optimizer(body, training, phase.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)
    device = training.device
    task.model.to(device)
    task.model.train()
    for param in body:
        param.requires_grad_(True)
    losses: list[float] = []
    try:
        with stopping_in(lambda: f"in the contrastive phase, at step {len(losses) + 1} of {steps}"):
            for _ in range(epochs):
                for batch in loader:
                    labels = batch.pop("labels").to(device)
                    if len(labels) < 2:  # a last batch of one example (and no anchor) has no pair
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
        task.model.eval()
    return losses, len(loader)


@torch.no_grad()
def _encode(split: PrefixSplit, dataset, collate, device, batch_size: int = 64) -> np.ndarray:
    """The pooled features of every example of ``dataset`` (labels, if any, dropped), in order; encoded longest first,
    so that each batch pads to about its own texts' length (as the frozen-feature cache encodes)."""
    positions = list(range(len(dataset)))
    order = longest_first(positions, [len(ids) for ids in dataset["input_ids"]])
    out = []
    for batch in DataLoader(Subset(dataset, order), batch_size=batch_size, collate_fn=collate):
        batch.pop("labels", None)
        out.append(split.encode({name: value.to(device) for name, value in batch.items()})["features"].float().cpu())
    return in_order_of(torch.cat(out), order, positions).numpy()


def phase_optimizer(parameters: list[torch.nn.Parameter], training, learning_rate: float) -> torch.optim.Optimizer:
    """The run's own optimizer (``--optim``) as the Trainer builds it, at the phase's rate and SetFit's weight decay:
    by default fused AdamW, ~7× faster on CPU than torch's per-tensor default (a step over MiniLM's 22 M parameters:
    0.03 s against 0.21 s on one thread; the per-tensor steps were a quarter of the phase's time)."""
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(training)
    return optimizer_cls(parameters, **{**kwargs, "lr": learning_rate, "weight_decay": WEIGHT_DECAY})


def _batch_sizes(examples: int, batch: int) -> list[int]:
    return [batch] * (examples // batch) + ([examples % batch] if examples % batch else [])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
