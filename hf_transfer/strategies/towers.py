"""Per-tower strategies for fusion models: ``--image_strategy linear_probe --text_strategy lora``.

Each tower is adapted by an ordinary (composed) strategy from the registry, seeing only that tower through its own
block view (whose head is empty: the towers have none), so every strategy works per tower unchanged. The fusion head
always trains. Each tower learns at its own learning rate; the head at ``--learning_rate``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from accelerate.utils import extract_model_from_parallel
from torch import nn

from .base import OptimizerSettings, StrategyContext, TransferStrategy
from .compose import ComposedStrategy
from .spec import StrategySpec


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
        self.name = str(StrategySpec.per_tower({t.name: t.strategy.name for t in towers}))

    def apply(self, context: StrategyContext) -> None:
        for tower in self.towers:
            tower.strategy.apply(tower.context)
        for param in context.view.model.fusion_head.parameters():
            param.requires_grad_(True)

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        for tower in self.towers:  # e.g. a peft model around the tower; the fusion model itself stays the same
            setattr(model, tower.attribute, tower.strategy.wrap_model(getattr(model, tower.attribute), tower.context))
        return model

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, optimizer: OptimizerSettings):
        model = extract_model_from_parallel(model)
        groups = []
        for tower in self.towers:
            module = getattr(model, tower.attribute)
            settings = optimizer.within(f"{tower.attribute}.")
            if tower.learning_rate:
                settings = replace(settings, learning_rate=tower.learning_rate)
            own = tower.strategy.optimizer_groups(module, tower.context, settings)
            groups += own if own is not None else settings.groups(list(module.named_parameters()), tower.name)
        head = optimizer.within("fusion_head.")
        groups += head.groups(list(model.fusion_head.named_parameters()), "fusion_head")
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
        model = extract_model_from_parallel(model)
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
