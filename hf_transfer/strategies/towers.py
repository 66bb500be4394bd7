"""Per-tower strategies for fusion models: ``--image_strategy linear_probe --text_strategy lora``.

Each tower is adapted by an ordinary (composed) strategy from the registry, seeing only that tower through its own
block view (whose head is empty: the towers have none), so every strategy works per tower unchanged. The fusion head
always trains. Each tower learns at its own learning rate; the head at ``--learning_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import StrategyContext, TransferStrategy
from .compose import ComposedStrategy


@dataclass
class Tower:
    name: str  # "image" or "text": the model's attribute is f"{name}_tower"
    strategy: ComposedStrategy
    context: StrategyContext  # the tower's own view and reference
    learning_rate: float | None = None  # None: --learning_rate

    @property
    def attribute(self) -> str:
        return f"{self.name}_tower"


class TowerStrategies(TransferStrategy):
    def __init__(self, towers: list[Tower]):
        self.towers = towers
        self.args = towers[0].strategy.args
        self.name = ", ".join(f"{t.name}: {t.strategy.name}" for t in towers)

    def apply(self, context: StrategyContext) -> None:
        for tower in self.towers:
            tower.strategy.apply(tower.context)
        for param in context.view.model.fusion_head.parameters():
            param.requires_grad_(True)

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        for tower in self.towers:  # e.g. a peft model around the tower; the fusion model itself stays the same
            setattr(model, tower.attribute, tower.strategy.wrap_model(getattr(model, tower.attribute), tower.context))
        return model

    def optimizer_groups(self, model, context, learning_rate, weight_decay):
        model = unwrap(model)
        groups = []
        for tower in self.towers:
            module, lr = getattr(model, tower.attribute), tower.learning_rate or learning_rate
            own = tower.strategy.optimizer_groups(module, tower.context, lr, weight_decay)
            groups += own if own is not None else parameter_groups(module, lr, weight_decay, tower.name)
        groups += parameter_groups(model.fusion_head, learning_rate, weight_decay, "fusion_head")
        return groups

    def trainable_over_run(self, context: StrategyContext) -> set[str] | None:
        names = {
            f"{tower.attribute}.{name}"
            for tower in self.towers
            for name in (tower.strategy.trainable_over_run(tower.context) or ())
        }
        return names or None

    def callbacks(self, context: StrategyContext):
        return [callback for tower in self.towers for callback in tower.strategy.callbacks(tower.context)]

    def regularisation(self, model, inputs, outputs) -> dict[str, torch.Tensor]:
        terms = {}
        model = unwrap(model)
        for tower in self.towers:
            module = getattr(model, tower.attribute)
            for name, value in tower.strategy.regularisation(module, inputs, outputs).items():
                terms[f"{tower.name}_{name}"] = value
        return terms

    def after_train(self, trainer, context: StrategyContext) -> dict[str, float]:
        report = {}
        for tower in self.towers:
            for name, value in tower.strategy.after_train(trainer, tower.context).items():
                report[f"{tower.name}_{name}"] = value
        return report

    def save(self, model: nn.Module, output_dir: str, context: StrategyContext) -> bool:
        return False  # the task saves the whole fusion model, adapters merged into their towers


def unwrap(model: nn.Module) -> nn.Module:
    """The fusion model inside a DistributedDataParallel (or similar) wrapper."""
    while isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model


def parameter_groups(module: nn.Module, learning_rate: float, weight_decay: float, group_name: str) -> list[dict]:
    """The trainable parameters of ``module`` in two AdamW groups, as the Trainer splits them: weight decay on weight
    matrices, none on biases and normalisation layers."""
    from transformers.trainer_pt_utils import get_parameter_names

    decay_names = set(get_parameter_names(module, [nn.LayerNorm, nn.modules.batchnorm._BatchNorm, nn.GroupNorm]))
    groups = []
    for decayed in (True, False):
        members = [
            p
            for n, p in module.named_parameters()
            if p.requires_grad and (n in decay_names and not n.endswith("bias")) == decayed
        ]
        if members:
            groups.append(
                {
                    "params": members,
                    "lr": learning_rate,
                    "weight_decay": weight_decay if decayed else 0.0,
                    "group_name": group_name,
                }
            )
    return groups
