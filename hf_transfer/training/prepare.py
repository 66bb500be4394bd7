"""The one entry point every run goes through: ``prepare(config)`` → :class:`PreparedRun` → ``build_transfer_trainer``
(in :mod:`hf_transfer.training.trainer`).

``fine_tune``, the multimodal ablation, the benchmarks and the tests all build their Trainer here, so the sequence
config → task (data, model, view) → strategy applied and wrapped → Trainer exists exactly once.
"""

from __future__ import annotations

import logging

from torch import nn
from transformers import TrainingArguments, set_seed

from ..exceptions import ConfigError
from ..recipe import RecipeConfig, resolve_config
from ..strategies import ComposedStrategy, StrategyContext, TransferStrategy
from .budget import choose_training, class_balance
from .feature_cache import CannotCache, cache_frozen_prefix, find_frozen_prefix, keep_prefix_in_eval, why_not_cached
from .prepared import PreparedRun, PreparedTask
from .tasks import TASKS
from .trainer import parameter_counts

logger = logging.getLogger(__name__)


def prepare(config: RecipeConfig) -> PreparedRun:
    """Resolve ``config``, build the task's data and model, and apply the strategy. Seeds everything first, so the
    new head's initialisation and the data order are reproducible."""
    config = resolve_config(config)
    training = config.training
    set_seed(training.seed)
    task = TASKS[config.task](config, training)
    strategy = task.strategy if task.strategy is not None else ComposedStrategy(config.strategy)
    context = StrategyContext(
        view=task.view,
        task=config.task,
        base_model_reference=task.base_model_reference,
        source_model_factory=task.source_model_factory,
        save_native=task.save,
    )
    model = adapt_model(strategy, context, task.model)
    if task.finalise is not None:
        task.finalise(task, model)
    if strategy.trainable_over_run(context) is not None and training.world_size > 1:
        training.ddp_find_unused_parameters = True  # a block frozen for now still belongs to the DDP reducer
    choose_best_metric(training, task)
    trainable, total = parameter_counts(model)
    prepared = PreparedRun(config, task, strategy, context, model, trainable, total)
    prepared.class_weights = choose_defaults_by_data_size(prepared)
    use_frozen_feature_cache(prepared)
    return prepared


def choose_defaults_by_data_size(prepared: PreparedRun):
    """Training length, batch, learning rate and class weights the user left unset, from the data and the
    strategy (:mod:`hf_transfer.training.budget`); logged in one line and recorded for the config and the card."""
    task, config = prepared.task, prepared.config
    choices, weights = choose_training(
        prepared.training,
        prepared.strategy,
        len(task.train_dataset),
        task.labels.get("train"),
        len(task.label_names or []),
        task.problem_type,
        config.run.class_weights,
    )
    balance = {split: class_balance(labels, task.label_names) for split, labels in task.labels.items()}
    task.record.class_balance = {split: counts for split, counts in balance.items() if counts}
    task.record.chosen_automatically = choices.values
    task.record.chosen_automatically_line = choices.line()
    for split, counts in task.record.class_balance.items():
        logger.info("Class balance (%s): %s", split, ", ".join(f"{name} {n}" for name, n in counts.items()))
    logger.info("Chosen automatically: %s.", choices.line())
    return weights


def use_frozen_feature_cache(prepared: PreparedRun) -> None:
    """Keep a frozen prefix in eval mode and, where it applies, train on its cached outputs (one log line either
    way when the task could cache)."""
    prefix = find_frozen_prefix(prepared)
    if prefix is not None:
        keep_prefix_in_eval(prefix)
    reason = why_not_cached(prepared, prefix)
    if reason is None and prefix is not None:
        try:
            cache_frozen_prefix(prepared, prefix)
            return
        except CannotCache as err:
            reason = str(err)
    if reason and prepared.task.feature_inputs is not None:
        logger.info("Frozen-feature cache not used: %s.", reason)


def adapt_model(strategy: TransferStrategy, context: StrategyContext, model: nn.Module) -> nn.Module:
    """Let the strategy set what trains on ``context.view``, then wrap the model if it needs to (e.g. peft)."""
    strategy.apply(context)
    return strategy.wrap_model(model, context)


def choose_best_metric(training: TrainingArguments, task: PreparedTask) -> None:
    """Keep the user's ``metric_for_best_model`` if this task reports it; else use the task's own (e.g. mse)."""
    wanted = (training.metric_for_best_model or "").removeprefix("eval_")
    if not training.load_best_model_at_end or wanted in (*task.metrics.names, "loss"):
        return
    if wanted not in ("", "accuracy"):  # "accuracy" is the recipes' default, not a user choice
        raise ConfigError(
            f"--metric_for_best_model {wanted!r} is not reported for {task.problem_type}; "
            f"choose one of {', '.join(task.metrics.names)} or loss."
        )
    training.metric_for_best_model = task.metrics.best
    training.greater_is_better = task.metrics.greater_is_better
