"""The one entry point every run goes through: ``prepare(config)`` → :class:`PreparedRun` → ``build_transfer_trainer``
(in :mod:`hf_transfer.training.trainer`).

``fine_tune``, the multimodal ablation, the benchmarks and the tests all build their Trainer here, so the sequence
config → task (data, model, view) → strategy applied and wrapped → Trainer exists exactly once.
"""

from __future__ import annotations

import logging

from torch import nn
from transformers import set_seed

from ..config import SINGLE_LABEL
from ..exceptions import ConfigError
from ..recipe import RecipeConfig, resolve_config
from ..strategies import ComposedStrategy, StrategyContext, TransferStrategy
from .cached_head import closed_form_choices, closed_form_head_wanted
from .contrastive import run_contrastive_phase
from .label_anchors import ANCHORS_NEED, build_label_anchors
from .prefix_cache import CannotCache, cache_frozen_prefix, find_frozen_prefix, keep_prefix_in_eval, why_not_cached
from .resolve import resolve_run
from .run_types import PreparedRun
from .tasks import TASKS
from .trainer import parameter_counts

logger = logging.getLogger(__name__)


def prepare(config: RecipeConfig) -> PreparedRun:
    """Build the task's data and model, apply the strategy, and resolve the run once the data is known
    (:func:`~hf_transfer.training.resolve.resolve_run`). Seeds everything first, so the new head's initialisation
    and the data order are reproducible. ``config`` is resolved first if it was built by hand."""
    config = resolve_config(config)
    training = config.training
    set_seed(training.seed)
    task = TASKS[config.task](config, training)
    config = task.config or config  # the strategy may have been chosen from the data size
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
    resolved = resolve_run(config, task, strategy, uses_ddp_reducer=strategy.trainable_over_run(context) is not None)
    trainable, total = parameter_counts(model)
    prepared = PreparedRun(resolved, task, strategy, context, model, trainable, total)
    unlabeled = task.record.unlabeled_source is not None
    closed_form = (strategy.self_training_head() if unlabeled else strategy.closed_form_head()) is not None
    prepared.anchors = build_label_anchors(prepared, closed_form)
    run_contrastive_phase(prepared)  # the body it tunes is what the cache then encodes
    use_frozen_feature_cache(prepared)
    if prepared.anchors is not None and closed_form_head_wanted(prepared) is None:
        raise ConfigError(f"{ANCHORS_NEED} The frozen-feature cache could not be used here, so it cannot.")
    check_self_training(prepared)
    log_choices(prepared)
    return prepared


def log_choices(prepared: PreparedRun) -> None:
    """The ``Chosen automatically`` line, once the cache has decided how the head trains: a head fitted in closed
    form takes no Trainer steps, so the steps and learning rate chosen for them would mislead (its C and the rounds
    are added to the record's line when it is fitted)."""
    record = prepared.task.record
    if prepared.strategy.closed_form_head() is not None and prepared.task.problem_type != SINGLE_LABEL:
        logger.info("Closed-form head not used: %s is trained by the Trainer.", prepared.task.problem_type)
    if closed_form_head_wanted(prepared) is not None:
        how = "the head fitted in closed form on the cached features (no Trainer steps)"
        record.chosen_automatically_line = closed_form_choices(record, how)
    logger.info("Chosen automatically: %s.", record.chosen_automatically_line)


def check_self_training(prepared: PreparedRun) -> None:
    """Unlabelled examples are used by self-training: on cached features (a round is a closed-form head fit) or
    through the Trainer (a round is a training run). A run that can do neither is refused before it trains, rather
    than silently ignoring them."""
    task = prepared.task
    if task.record.unlabeled_source is None:
        return
    if task.problem_type != SINGLE_LABEL:
        why = f"it pseudo-labels single-label classes, and this data is {task.problem_type}"
    elif prepared.cached_split is not None and prepared.cached_split.head is None:
        why = (
            "the model's head on the cached features is more than one linear layer (a text model's [CLS] pooler): "
            "pass --pooling mean"
        )
    else:
        return
    raise ConfigError(f"{task.record.unlabeled_source.split(' ')[0]}: self-training is not available: {why}.")


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
