"""A run's head fitted in closed form on its cached training features (:mod:`.linear_head`), and, with unlabelled
examples, self-trained (:mod:`.self_training`): the result copied into the model's own classifier."""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ..config import SINGLE_LABEL
from ..run_record import RunRecord
from ..strategies.base import ClosedFormHead
from .label_anchors import anchor_features
from .linear_head import LinearHead, fit_linear_head
from .run_types import PreparedRun
from .self_training import record, self_train, settings_for

logger = logging.getLogger(__name__)


def closed_form_choices(record: RunRecord, head: str) -> str:
    """The ``Chosen automatically`` line of a run whose head is fitted in closed form: no Trainer step, learning rate
    or class weight applies, so the line is the strategy, the small-data protocol and how the head was fitted."""
    no_validation = "no validation split (every example trains)" if record.no_validation else None
    return "; ".join(filter(None, [record.strategy_chosen, no_validation, head]))


def closed_form_head_wanted(prepared: PreparedRun) -> ClosedFormHead | None:
    """How the head will be fitted in closed form, where the strategy asks for it and the run allows it
    (single-label, the whole body cached, a linear head); None: the Trainer trains it."""
    strategy, split = prepared.strategy, prepared.cached_split
    wanted = strategy.closed_form_head() if prepared.unlabeled is None else strategy.self_training_head()
    if wanted is None or split is None or split.head is None or prepared.task.problem_type != SINGLE_LABEL:
        return None
    return wanted


def fit_cached_head(prepared: PreparedRun) -> dict[str, float] | None:
    """Fit the run's head in closed form on its cached training features (:func:`closed_form_head_wanted`); the
    metrics the Trainer's ``train`` would report, or None to train the usual way."""
    split, task = prepared.cached_split, prepared.task
    wanted = closed_form_head_wanted(prepared)
    if wanted is None:
        return None
    started = time.perf_counter()
    features = task.train_dataset.tensors["features"].float().numpy()
    labels = np.asarray(task.train_dataset.labels)
    if prepared.anchors is not None:  # each class's description, COPIES more examples of it (label anchors)
        features = np.concatenate([features, anchor_features(prepared, prepared.anchors)])
        labels = np.concatenate([labels, prepared.anchors.labels])
    head = fit_linear_head(features, labels, split.head.out_features, wanted.c, prepared.training.seed)
    anchors = f" and {prepared.anchors.examples_line()}" if prepared.anchors is not None else ""
    lines = [f"head fitted in closed form on {len(task.train_dataset)} examples{anchors}: {head.describe()}"]
    if prepared.unlabeled is not None:  # self-training: more closed-form fits, with pseudo-labelled examples
        head, report = self_train_head(prepared, features, labels, head)
        lines.append(report.line())
    with torch.no_grad():
        split.head.weight.copy_(torch.from_numpy(head.weight))
        split.head.bias.copy_(torch.from_numpy(head.bias))
    runtime = time.perf_counter() - started
    task.record.head_fit = head.describe()
    if task.record.body_phase and head.cv_accuracy is not None:  # the folds were not unseen by the tuned body
        task.record.head_fit += "; optimistic, as the body was tuned on these same examples"
    task.record.chosen_automatically_line = closed_form_choices(task.record, "; ".join(lines))
    logger.info("Closed-form head (%.1f s): %s.", runtime, head.describe())
    metrics = {"train_runtime": round(runtime, 4), "head_c": head.c}
    if head.cv_accuracy is not None:
        metrics["head_cv_accuracy"] = head.cv_accuracy
    return metrics


def self_train_head(prepared: PreparedRun, features: np.ndarray, labels: np.ndarray, head: LinearHead):
    """Self-training rounds on the unlabelled examples' cached features (:mod:`.self_training`), from ``head``; the
    head kept and the report, which the record and the log get."""
    task = prepared.task
    kept, report = self_train(
        features,
        labels,
        prepared.unlabeled.tensors["features"].float().numpy(),
        np.asarray(prepared.unlabeled.labels),
        task.label_names,
        head.c,
        settings_for(prepared.config.run, labels),
        prepared.training.seed,
    )
    for entry in report.rounds:
        logger.info(entry.line())
    record(report, task.record)
    return LinearHead(kept.weight, kept.bias, kept.c, head.chosen_by, head.cv_accuracy), report
