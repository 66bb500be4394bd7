"""One run's every setting as a value: :func:`resolve_run` makes a frozen :class:`~.prepared.ResolvedRun` once per
run, after the data is known, so the data-size defaults (:mod:`hf_transfer.training.budget`) belong to it.

Two steps turn flags into values: :func:`hf_transfer.recipe.resolve_config` fills what needs no data (presets, the
task's model, pooling) and validates; :func:`resolve_run` then chooses what depends on the data and the strategy
(training length, batch, learning rate, evaluation schedule, class weights, the selection metric) and builds new
``TrainingArguments`` with them through its own constructor, so its validation runs on the result. Nothing after this
changes a setting.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from transformers import TrainingArguments

from ..exceptions import ConfigError
from ..recipe import RecipeConfig
from ..strategies import TransferStrategy
from .budget import Choices, choose_training, class_balance, examples_per_class
from .run_types import PreparedTask, ResolvedRun
from .size_defaults import strategy_choice

logger = logging.getLogger(__name__)

_TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainingArguments) if f.init)


def resolve_run(
    config: RecipeConfig, task: PreparedTask, strategy: TransferStrategy, uses_ddp_reducer: bool
) -> ResolvedRun:
    """Choose what the user left to the recipe from the prepared data (once per run) and validate the result.

    ``uses_ddp_reducer``: the trainable set changes during the run, so under DDP every parameter that will ever train
    must be in the gradient reducer from the start."""
    training = config.training
    per_class = examples_per_class(task.labels.get("train"), task.problem_type) if len(task.train_dataset) else 0
    task.record.strategy_chosen = strategy_choice(config, per_class)
    if per_class == 0:  # zero-shot: nothing trains, so there is nothing to size
        choices = Choices(
            reasons=["zero-shot: no labelled example trains; the head is built from the label descriptions"]
        )
        task.record.chosen_automatically_line = choices.line()
        return ResolvedRun(config, training, config.strategy_spec(), choices, None)
    choices, weights = choose_training(
        training,
        strategy,
        len(task.train_dataset),
        task.labels.get("train"),
        len(task.label_names or []),
        task.problem_type,
        config.run.class_weights,
    )
    changes = {name: value for name, value in choices.values.items() if name in _TRAINING_FIELDS}
    changes.update(_best_metric(training, task))
    if len(task.eval_dataset) == 0 and strategy.needs_validation:
        raise ConfigError(
            f"--strategy {strategy.name} chooses on the validation split, and this run has none (too few examples "
            "per class to hold some out): give --validation_file / --validation_dir, or --train_val_split."
        )
    if len(task.eval_dataset) == 0:  # the small-data protocol: nothing to evaluate or to choose a checkpoint by
        changes.update(eval_strategy="no", load_best_model_at_end=False)
        choices.reasons[:] = [r for r in choices.reasons if not r.startswith("evaluated every")]
        choices.reasons.insert(0, "no validation split (every example trains; the last step is kept)")
    if uses_ddp_reducer and training.world_size > 1:
        changes["ddp_find_unused_parameters"] = True  # a block frozen for now still belongs to the DDP reducer
    try:  # a plain TrainingArguments, built by its own constructor: its validation runs on the choices
        resolved = TrainingArguments(**{**{name: getattr(training, name) for name in _TRAINING_FIELDS}, **changes})
    except ValueError as err:  # TrainingArguments' own validation of the combination
        raise ConfigError(str(err)) from err
    balance = {split: class_balance(labels, task.label_names) for split, labels in task.labels.items()}
    task.record.class_balance = {split: counts for split, counts in balance.items() if counts}
    if task.record.strategy_chosen:
        choices.reasons.insert(0, task.record.strategy_chosen)
    task.record.chosen_automatically = choices.values
    task.record.chosen_automatically_line = choices.line()
    for split, counts in task.record.class_balance.items():
        logger.info("Class balance (%s): %s", split, ", ".join(f"{name} {n}" for name, n in counts.items()))
    return ResolvedRun(config, resolved, config.strategy_spec(), choices, weights)


def _best_metric(training: TrainingArguments, task: PreparedTask) -> dict[str, Any]:
    """Keep the user's ``metric_for_best_model`` if this task reports it; else use the task's own (e.g. mse)."""
    wanted = (training.metric_for_best_model or "").removeprefix("eval_")
    if not training.load_best_model_at_end or wanted in (*task.metrics.names, "loss"):
        return {}
    if wanted not in ("", "accuracy"):  # "accuracy" is the recipes' default, not a user choice
        raise ConfigError(
            f"--metric_for_best_model {wanted!r} is not reported for {task.problem_type}; "
            f"choose one of {', '.join(task.metrics.names)} or loss."
        )
    return {"metric_for_best_model": task.metrics.best, "greater_is_better": task.metrics.greater_is_better}
