"""The transformers ``Trainer``, driven by a transfer strategy: its parameter groups, callbacks and loss terms."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments

from ..strategies import OptimizerSettings, StrategyContext, TransferStrategy
from .run_types import PreparedRun

logger = logging.getLogger(__name__)


class TransferTrainer(Trainer):
    """A ``Trainer`` that lets the strategy shape the optimizer, the trainable set over time and the loss.

    The optimizer only ever sees parameters with ``requires_grad`` at creation (the Trainer's own filtering), so
    frozen blocks cost no optimizer state; strategies that unfreeze later mark those parameters trainable up front.
    """

    def __init__(
        self,
        *args,
        strategy: TransferStrategy,
        context: StrategyContext,
        class_weights: torch.Tensor | None = None,
        **kwargs,
    ):
        callbacks = list(kwargs.pop("callbacks", None) or []) + strategy.callbacks(context)
        super().__init__(*args, callbacks=callbacks, **kwargs)
        self.strategy = strategy
        self.context = context
        self.class_weights = class_weights
        # Every head here returns the *mean* loss of its local batch, never a sum over ``num_items_in_batch``. Left
        # on, the Trainer would multiply it by the number of processes for models whose forward takes **kwargs
        # (BERT does), doubling the logged loss and the gradients under 2-process DDP.
        self.model_accepts_loss_kwargs = False
        self._regulariser_sums: dict[str, float] = defaultdict(float)
        self._regulariser_steps = 0
        trainable, total = parameter_counts(self.model)
        logger.info(
            "Strategy %r: %s of %s parameters trainable (%.2f%%)",
            strategy.name,
            f"{trainable:,}",
            f"{total:,}",
            100.0 * trainable / max(total, 1),
        )

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            target = model if model is not None else self.model
            decay_names = frozenset(self.get_decay_parameter_names(target))
            settings = OptimizerSettings(self.args.learning_rate, self.args.weight_decay, decay_names)
            groups = self.strategy.optimizer_groups(target, self.context, settings)
            if groups is not None:
                optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, target)
                self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return super().create_optimizer(model) if self.optimizer is None else self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training and self.class_weights is not None:  # evaluation losses stay unweighted: comparable
            logits = outputs["logits"]
            weights = self.class_weights.to(logits.device, logits.dtype)
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), inputs["labels"].view(-1), weight=weights)
        if model.training:  # evaluation losses stay the task loss alone
            terms = self.strategy.regularisation(model, inputs, outputs)
            for name, value in terms.items():
                loss = loss + value
                self._regulariser_sums[name] += float(value.detach())
            if terms:
                self._regulariser_steps += 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and self._regulariser_steps:  # a training log: add each term's mean since the last one
            for name, total in self._regulariser_sums.items():
                logs[name] = round(total / self._regulariser_steps, 6)
            self._regulariser_sums.clear()
            self._regulariser_steps = 0
        super().log(logs, start_time)


def build_transfer_trainer(
    prepared: PreparedRun,
    callbacks: list[TrainerCallback] | None = None,
    args: TrainingArguments | None = None,
    **overrides: Any,
) -> TransferTrainer:
    """The Trainer of a prepared run: its datasets, collator, metrics and strategy; ``callbacks`` run beside the
    strategy's. ``args`` replaces the run's TrainingArguments (e.g. a throw-away output dir); ``overrides`` replace
    Trainer keyword arguments (e.g. ``eval_dataset=None``)."""
    task, training = prepared.task, args or prepared.training
    callbacks = list(callbacks or [])
    patience = prepared.config.run.early_stopping_patience
    if patience and training.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=patience))
    kwargs: dict[str, Any] = {
        "model": prepared.model,
        "args": training,
        "train_dataset": task.train_dataset,
        "eval_dataset": task.eval_dataset,
        "data_collator": task.data_collator,
        "processing_class": task.processing_class,
        "compute_metrics": task.metrics.compute,
        "callbacks": callbacks,
        "strategy": prepared.strategy,
        "context": prepared.context,
        "class_weights": prepared.class_weights,
    }
    return TransferTrainer(**{**kwargs, **overrides})


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters, as peft or transformers count them."""
    if hasattr(model, "get_nb_trainable_parameters"):  # a peft model
        return tuple(int(n) for n in model.get_nb_trainable_parameters())
    return model.num_parameters(only_trainable=True), model.num_parameters()
