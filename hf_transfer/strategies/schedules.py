"""Strategies whose trainable set changes during the run: ``gradual_unfreeze`` (ULMFiT) and ``lp_ft`` (LP-FT).

Every parameter that will ever train has ``requires_grad`` set when the optimizer (and, under DDP, the gradient
reducer) is built, so both know it from the start; a callback then freezes what the current stage keeps frozen.
Frozen parameters get no gradient, so AdamW keeps no state for them: once unfrozen they start with fresh optimizer
state, at their group's learning rate as scheduled at that point.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import StrategyContext, TransferStrategy
from .freezing import TRAIN_BN
from .registry import register_strategy
from .settings import Setting, StrategyArgumentsBase, positive

if TYPE_CHECKING:
    from transformers import TrainerCallback


@register_strategy("gradual_unfreeze")
class GradualUnfreeze(TransferStrategy):
    """ULMFiT (Howard & Ruder, 2018): start with the head, unfreeze one more block from the top at each milestone."""

    summary = (
        "ULMFiT: the head first, then one more block from the top at each milestone; newly unfrozen weights start "
        "with fresh AdamW state at their group's scheduled learning rate"
    )
    settings = (
        Setting(
            "unfreeze_every", float, 1.0, "unfreeze one more block (from the top) every this many epochs", positive
        ),
        Setting(
            "unfreeze_milestones",
            str,
            None,
            "explicit epochs at which one more block unfreezes, e.g. '1,2,4'",
            default_text="none: every --unfreeze_every epochs",
        ),
        TRAIN_BN,
    )

    @classmethod
    def validate_args(cls, args: StrategyArgumentsBase) -> None:
        if args.unfreeze_every is not None and args.unfreeze_milestones is not None:
            raise ConfigError("Give --unfreeze_every or --unfreeze_milestones, not both.")
        if args.unfreeze_milestones is not None:
            milestones = parse_floats(args.unfreeze_milestones, "--unfreeze_milestones")
            if milestones != sorted(milestones) or milestones[0] <= 0:
                raise ConfigError(f"--unfreeze_milestones must be increasing epochs > 0, got {milestones}.")

    def stages(self, context: StrategyContext) -> tuple[list[set[str]], list[float]]:
        view = context.view
        # head; head + top block; ...; + bottom block; + stem (everything)
        groups = [view.head, *reversed(view.blocks), view.stem]
        stages, trainable = [], set()
        for group in groups:
            trainable = trainable | set(group)
            stages.append(set(trainable))
        if self.setting("unfreeze_milestones"):
            starts = [0.0, *parse_floats(self.setting("unfreeze_milestones"), "--unfreeze_milestones")]
            stages = stages[: len(starts)]
            if len(starts) > len(stages):
                raise ConfigError(
                    f"--unfreeze_milestones lists {len(starts) - 1} milestones; at most {len(stages) - 1}."
                )
        else:
            every = float(self.setting("unfreeze_every"))
            starts = [k * every for k in range(len(stages))]
        return stages, starts

    def trainable_over_run(self, context: StrategyContext) -> set[str]:
        stages, _ = self.stages(context)
        return stages[-1]

    def apply(self, context: StrategyContext) -> None:
        trainable = self.trainable_over_run(context)
        for name, param in context.view.model.named_parameters():
            param.requires_grad_(name in trainable)

    def callbacks(self, context: StrategyContext) -> list[TrainerCallback]:
        stages, starts = self.stages(context)
        from .unfreezing import StagedUnfreezing  # a transformers TrainerCallback: imported when training starts

        return [StagedUnfreezing(context.view.model, stages, starts, bool(self.setting("train_bn")))]


@register_strategy("lp_ft")
class LinearProbeThenFineTune(TransferStrategy):
    """LP-FT (Kumar et al., 2022): fit the head on frozen features first, then fine-tune everything, in one run.

    Starting full fine-tuning from a good head keeps the early, large gradients from distorting pretrained features.
    """

    summary = "LP-FT: linear probe, then full fine-tuning, in one run"
    settings = (Setting("lp_epochs", float, 1.0, "epochs of linear probing before full fine-tuning", check=positive),)

    def apply(self, context: StrategyContext) -> None:
        for param in context.view.model.parameters():
            param.requires_grad_(True)

    def trainable_over_run(self, context: StrategyContext) -> set[str]:
        return {name for name, _ in context.view.model.named_parameters()}

    def callbacks(self, context: StrategyContext) -> list[TrainerCallback]:
        everything = {name for name, _ in context.view.model.named_parameters()}
        stages = [set(context.view.head), everything]
        from .unfreezing import StagedUnfreezing

        return [StagedUnfreezing(context.view.model, stages, [0.0, float(self.setting("lp_epochs"))], train_bn=True)]


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise ConfigError(f"{flag}: expected comma-separated numbers, got {text!r}.") from err
    if not values or any(math.isnan(v) for v in values):
        raise ConfigError(f"{flag}: expected comma-separated numbers, got {text!r}.")
    return values
