"""Several strategies as one: ``--strategy freeze+llrd``, ``full+l2sp+wise_ft``, ...

At most one strategy of each kind (trainable set, learning rates, regulariser, post-hoc) and no declared conflict; a
setting that none of the chosen strategies reads is an error, not silently ignored.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import StrategyArguments
from ..exceptions import ConfigError
from .base import TRAINABLE, StrategyContext, TransferStrategy, check_compatible
from .registry import get_strategy_class, list_strategies


def strategy_classes(args: StrategyArguments) -> list[type[TransferStrategy]]:
    names = [part.strip() for part in args.strategy.split("+")]
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"--strategy {args.strategy!r}: join distinct strategy names with '+'.")
    classes = [get_strategy_class(name) for name in names]
    check_compatible(classes)
    return classes


def validate_strategy_args(args: StrategyArguments) -> None:
    classes = strategy_classes(args)
    read = {flag for cls in classes for flag in cls.flags}
    for f in dataclasses.fields(args):
        if f.name != "strategy" and getattr(args, f.name) is not None and f.name not in read:
            users = [name for name in list_strategies() if f.name in get_strategy_class(name).flags]
            raise ConfigError(f"--{f.name} does not apply to --strategy {args.strategy}; it is read by {users}.")
    for cls in classes:
        cls.validate_args(args)


class ComposedStrategy(TransferStrategy):
    """Delegates each hook to the parts, trainable-set strategy first (``full`` when none is named)."""

    def __init__(self, args: StrategyArguments):
        super().__init__(args)
        validate_strategy_args(args)
        classes = strategy_classes(args)
        if not any(cls.kind == TRAINABLE for cls in classes):
            classes.insert(0, get_strategy_class("full"))
        classes.sort(key=lambda cls: cls.kind != TRAINABLE)
        self.parts = [cls(args) for cls in classes]
        self.name = args.strategy

    def apply(self, context: StrategyContext) -> None:
        for part in self.parts:
            part.apply(context)

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        for part in self.parts:
            model = part.wrap_model(model, context)
        return model

    def optimizer_groups(self, model, context, learning_rate, weight_decay):
        for part in self.parts:
            groups = part.optimizer_groups(model, context, learning_rate, weight_decay)
            if groups is not None:
                return groups
        return None

    def trainable_over_run(self, context: StrategyContext) -> set[str] | None:
        for part in self.parts:
            names = part.trainable_over_run(context)
            if names is not None:
                return names
        return None

    def callbacks(self, context: StrategyContext):
        return [callback for part in self.parts for callback in part.callbacks(context)]

    def regularisation(self, model, inputs, outputs) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        for part in self.parts:
            terms.update(part.regularisation(model, inputs, outputs))
        return terms

    def after_train(self, trainer, context: StrategyContext) -> dict[str, float]:
        report: dict[str, float] = {}
        for part in self.parts:
            report.update(part.after_train(trainer, context))
        return report

    def save(self, model: nn.Module, output_dir: str, context: StrategyContext) -> bool:
        return any(part.save(model, output_dir, context) for part in self.parts)


def build_strategy(args: StrategyArguments) -> ComposedStrategy:
    return ComposedStrategy(args)
