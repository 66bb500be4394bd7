"""Several strategies as one: ``--strategy freeze+llrd``, ``full+l2sp+wise_ft``, ...

At most one strategy of each kind (trainable set, learning rates, regulariser, post-hoc) and no declared conflict; a
setting that none of the chosen strategies reads is an error, not silently ignored.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import TRAINABLE, OptimizerSettings, StrategyContext, TransferStrategy
from .registry import get_strategy_class, list_strategies
from .settings import Setting, StrategyArgumentsBase
from .spec import StrategySpec

if TYPE_CHECKING:
    import torch
    from torch import nn


def given_settings(args: StrategyArgumentsBase) -> dict[str, object]:
    """The settings a user set: every field but ``strategy`` that is not None (unset settings are None)."""
    fields = (f.name for f in dataclasses.fields(args) if f.name != "strategy")
    return {name: value for name in fields if (value := getattr(args, name)) is not None}


def check_strategy_arguments(args: StrategyArgumentsBase, read_elsewhere: set[str] = frozenset()) -> None:
    """Raise :class:`ConfigError` for a setting no chosen strategy reads, a value its ``Setting`` rejects, or a
    combination a strategy rejects. Changes nothing.

    ``read_elsewhere``: settings another part of the run reads (another tower's strategy), so not unread.
    """
    classes = StrategySpec.parse(args.strategy).tower().classes
    declared = {setting.name: setting for cls in classes for setting in cls.settings}
    for name, value in given_settings(args).items():
        if value is None or name in declared or name in read_elsewhere:
            continue
        readers = [s for s in list_strategies() if name in get_strategy_class(s).setting_names()]
        raise ConfigError(f"--{name} does not apply to --strategy {args.strategy}; it is read by {readers}.")
    for cls in classes:
        for setting in cls.settings:
            problem = setting.problem(getattr(args, setting.name, None))
            if problem:
                raise ConfigError(problem)
        cls.validate_args(args)


def declared_settings() -> list[Setting]:
    """Every registered strategy's settings, each once, in registry order (shared settings are one object)."""
    seen: dict[str, Setting] = {}
    for name in list_strategies():
        for setting in get_strategy_class(name).settings:
            if setting.name in seen and seen[setting.name] != setting:
                raise ValueError(f"Two strategies declare different settings named {setting.name!r}.")
            seen.setdefault(setting.name, setting)
    return list(seen.values())


class ComposedStrategy(TransferStrategy):
    """Delegates each hook to the parts, trainable-set strategy first (``full`` when none is named)."""

    def __init__(self, args: StrategyArgumentsBase):
        super().__init__(args)
        check_strategy_arguments(args)  # a Python caller gets the same one-line errors as the command line
        classes = StrategySpec.parse(args.strategy).tower().classes
        if not any(cls.kind == TRAINABLE for cls in classes):
            classes.insert(0, get_strategy_class("full"))
        classes.sort(key=lambda cls: cls.kind != TRAINABLE)
        self.parts = [cls(args) for cls in classes]
        self.name = args.strategy
        self.needs_raw_inputs = any(part.needs_raw_inputs for part in self.parts)
        self.needs_validation = any(part.needs_validation for part in self.parts)
        self.default_learning_rate = self.parts[0].default_learning_rate  # the trainable-set strategy's

    def apply(self, context: StrategyContext) -> None:
        for part in self.parts:
            part.apply(context)

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        for part in self.parts:
            model = part.wrap_model(model, context)
        return model

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, optimizer: OptimizerSettings):
        for part in self.parts:
            groups = part.optimizer_groups(model, context, optimizer)
            if groups is not None:
                return groups
        return None

    def trainable_over_run(self, context: StrategyContext) -> set[str] | None:
        for part in self.parts:
            names = part.trainable_over_run(context)
            if names is not None:
                return names
        return None

    def closed_form_head(self):
        """Only a strategy alone: a regulariser, a schedule or a post-hoc step needs the Trainer's loop."""
        return self.parts[0].closed_form_head() if len(self.parts) == 1 else None

    def self_training_head(self):
        return self.parts[0].self_training_head() if len(self.parts) == 1 else None

    def body_phase(self, train_examples: int):
        """Only a strategy alone, as the closed-form head: its phases are one recipe."""
        return self.parts[0].body_phase(train_examples) if len(self.parts) == 1 else None

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
