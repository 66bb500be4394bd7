"""The Trainer callback behind ``gradual_unfreeze`` and ``lp_ft``: it moves the model through its unfreezing stages.

Its own module because it subclasses transformers' ``TrainerCallback`` (which imports torch): the strategies that use
it stay listable, with their settings, without importing either.
"""

from __future__ import annotations

import logging

from torch import nn
from transformers import TrainerCallback

from .base import freeze_batchnorm_statistics, modules_owning, release_batchnorm_statistics
from .freezing import freeze_all_batchnorm

logger = logging.getLogger(__name__)


class StagedUnfreezing(TrainerCallback):
    """Stage k (from epoch ``starts[k]``) trains ``stages[k]``; every other parameter of the model stays frozen."""

    def __init__(self, model: nn.Module, stages: list[set[str]], starts: list[float], train_bn: bool):
        self.model, self.stages, self.starts, self.train_bn = model, stages, starts, train_bn
        self.current = -1

    def stage_at(self, epoch: float) -> int:
        return max(k for k, start in enumerate(self.starts) if epoch + 1e-9 >= start)

    def set_stage(self, stage: int) -> None:
        if stage == self.current:
            return
        trainable = self.stages[stage]
        for name, param in self.model.named_parameters():
            param.requires_grad_(name in trainable)
        frozen = {name for name, _ in self.model.named_parameters()} - trainable
        release_batchnorm_statistics(self.model)
        freeze_batchnorm_statistics(nn.ModuleList(modules_owning(self.model, frozen)))
        if not self.train_bn:
            freeze_all_batchnorm(self.model)
        logger.info("Unfreezing stage %d: %d parameter tensors train.", stage, len(trainable))
        self.current = stage

    def on_train_begin(self, args, state, control, **kwargs):
        self.set_stage(self.stage_at(state.epoch or 0.0))

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.set_stage(self.stage_at(state.epoch or 0.0))

    def on_step_begin(self, args, state, control, **kwargs):
        self.set_stage(self.stage_at(state.epoch or 0.0))  # milestones may fall inside an epoch
