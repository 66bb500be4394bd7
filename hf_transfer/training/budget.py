"""Defaults that work at any data size: the training length, batch size, learning rate and class weights a run gets
when the user did not set them, chosen from how much data there is and which strategy trains.

Epochs alone are the wrong unit for transfer learning: 2 epochs of 16 reviews are 2 optimizer steps (a new head
barely moves), 2 epochs of 100,000 are hours. So a run gets at least ``MIN_STEPS`` optimizer steps and at most
``MAX_STEPS``, the warm-up a share of them, a batch no larger than the training set allows, evaluations spread over
the run rather than one per (possibly tiny) epoch, and the learning rate its strategy declares (a zero-initialised head
on frozen features wants ~100× the rate full fine-tuning does). Values the user set — on the command line, in YAML or
through ``default_training_arguments(**overrides)`` — are never changed; everything chosen is logged in one line and
recorded in ``hf_transfer_config.json`` and the card.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import IntervalStrategy, TrainingArguments

from ..config import SINGLE_LABEL
from ..recipe import user_set
from ..strategies import TransferStrategy

logger = logging.getLogger(__name__)

MIN_STEPS = 100  # optimizer steps a run gets at least, however small the data
MAX_STEPS = 20_000  # ... and at most, however large
MIN_EPOCHS_PER_EVALUATION = 1  # evaluate at most once per epoch ...
MAX_EVALUATIONS = 5  # ... and at most this many times per run (each also saves a checkpoint)
SMALLEST_BATCHES_PER_EPOCH = 4  # a batch no larger than a quarter of the training set
IMBALANCE_FOR_WEIGHTS = 2.0  # --class_weights auto weighs classes when the largest is this many times the smallest


@dataclass
class Choices:
    """What this module chose, for the log line, ``hf_transfer_config.json`` and the card."""

    values: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "nothing (every setting was given)"


def choose_training(
    training: TrainingArguments,
    strategy: TransferStrategy,
    train_examples: int,
    labels: list | None,
    n_classes: int,
    problem_type: str,
    class_weights: str,
) -> tuple[Choices, torch.Tensor | None]:
    """The training settings the user left to the recipe, as ``Choices.values`` (``training`` is not changed: the
    caller applies them through ``TrainingArguments``' own validation); returns them and the class weights."""
    choices = Choices()
    processes = max(1, training.world_size)
    per_class = examples_per_class(labels, problem_type)
    batch = training.per_device_train_batch_size
    if not user_set(training, "per_device_train_batch_size"):
        chosen = _batch_size(batch, train_examples, processes)
        if chosen != batch:
            batch = choices.values["per_device_train_batch_size"] = chosen
    steps_per_epoch = math.ceil(train_examples / (batch * processes * training.gradient_accumulation_steps))
    epochs, max_steps = training.num_train_epochs, training.max_steps
    length_is_ours = not (user_set(training, "num_train_epochs") or user_set(training, "max_steps"))
    if length_is_ours and max_steps <= 0:
        wanted = min(max(epochs * steps_per_epoch, MIN_STEPS), MAX_STEPS)
        if wanted != epochs * steps_per_epoch:
            whole = math.ceil if wanted > epochs * steps_per_epoch else math.floor  # at least MIN_STEPS, at most MAX
            epochs = max(1, whole(wanted / steps_per_epoch)) if wanted >= steps_per_epoch else 1
            choices.values["num_train_epochs"] = epochs
            if wanted < steps_per_epoch:
                max_steps = choices.values["max_steps"] = int(wanted)
    total_steps = max_steps if max_steps > 0 else int(epochs * steps_per_epoch)
    size = f"{per_class} examples/class" if per_class else f"{train_examples} examples"
    choices.reasons.append(f"{size} → {total_steps} steps of {batch * processes}")
    if length_is_ours:  # a length the user chose keeps the evaluation schedule they asked for
        _spread_evaluations(training, total_steps, steps_per_epoch, choices)
    if strategy.default_learning_rate and not user_set(training, "learning_rate"):
        choices.values["learning_rate"] = strategy.default_learning_rate
        choices.reasons.append(f"lr {strategy.default_learning_rate:g} ({strategy.name} default)")
    else:
        choices.reasons.append(f"lr {training.learning_rate:g}")
    weights = _class_weights(labels, n_classes, problem_type, class_weights, choices)
    return choices, weights


def _batch_size(default: int, examples: int, processes: int) -> int:
    """No larger than a quarter of the training set, at least 2, and never leaving a last batch of one example (a
    batch of one cannot train batch-norm layers)."""
    batch = min(default, max(2, examples // (SMALLEST_BATCHES_PER_EPOCH * processes)))
    for candidate in (batch, *range(batch - 1, 1, -1), batch + 1):
        if examples % (candidate * processes) != 1:
            return candidate
    return batch


def _spread_evaluations(training: TrainingArguments, total_steps: int, steps_per_epoch: int, choices: Choices) -> None:
    """A long run on little data has many tiny epochs: evaluate (and checkpoint) ~MAX_EVALUATIONS times instead."""
    if user_set(training, "eval_strategy") or training.eval_strategy != IntervalStrategy.EPOCH:
        return
    epochs = total_steps / max(steps_per_epoch, 1)
    if epochs <= MAX_EVALUATIONS:
        return
    every = max(steps_per_epoch * MIN_EPOCHS_PER_EVALUATION, math.ceil(total_steps / MAX_EVALUATIONS))
    choices.values.update(eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every)
    choices.reasons.append(f"evaluated every {every} steps")


def examples_per_class(labels: list | None, problem_type: str) -> int | None:
    if problem_type != SINGLE_LABEL or not labels:
        return None
    return min(Counter(labels).values())


def class_balance(labels: list | None, label_names: list[str] | None) -> dict[str, int]:
    """Examples per class (single-label: class ids), for the log and the card."""
    if not labels or not label_names or not isinstance(labels[0], int):
        return {}
    counts = Counter(labels)
    return {label_names[i]: counts.get(i, 0) for i in range(len(label_names))}


def _class_weights(
    labels: list | None, n_classes: int, problem_type: str, mode: str, choices: Choices
) -> torch.Tensor | None:
    """``--class_weights auto``: inverse-frequency weights (mean 1) when the largest class is at least twice the
    smallest; ``none``: never."""
    if problem_type != SINGLE_LABEL or not labels or mode == "none":
        choices.reasons.append("class weights off")
        return None
    counts = Counter(labels)
    sizes = [counts.get(i, 0) for i in range(n_classes)]
    if min(sizes) == 0 or max(sizes) < IMBALANCE_FOR_WEIGHTS * min(sizes):
        choices.reasons.append("class weights off (balanced)")
        return None
    weights = torch.tensor([1.0 / n for n in sizes])
    weights = weights * len(sizes) / weights.sum()
    choices.values["class_weights"] = [round(float(w), 4) for w in weights]
    choices.reasons.append(f"class weights on (largest class {max(sizes)}, smallest {min(sizes)})")
    return weights
