"""Strategies that choose which blocks train: ``linear_probe``, ``freeze`` (first N blocks), ``full``, ``bitfit``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import (
    ClosedFormHead,
    StrategyContext,
    TransferStrategy,
    freeze_batchnorm_statistics,
    modules_owning,
    set_trainable,
)
from .registry import register_strategy
from .settings import Setting, non_negative, one_of, positive

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    from torch import nn

# Read by every strategy that leaves part of a batch-norm backbone frozen for a while.
TRAIN_BN = Setting(
    "train_bn",
    bool,
    True,
    "batch-norm policy: true, batch-norm layers of unfrozen blocks update their statistics; false, every batch-norm "
    "layer keeps its pretrained statistics and affine parameters",
)

# Read by every strategy that may fit its head in closed form on cached features.
HEAD_C = Setting(
    "head_c",
    float,
    None,
    "inverse L2 strength of the closed-form head",
    check=positive,
    default_text="cross-validated on the training features",
)


@register_strategy("full")
class FullFineTuning(TransferStrategy):
    """Every parameter trains: the strongest baseline when data is plentiful enough."""

    summary = "everything; the new head starts at zero (as in BiT), so early steps cannot wreck the pretrained body"

    def apply(self, context: StrategyContext) -> None:
        for param in context.view.model.parameters():
            param.requires_grad_(True)


@register_strategy("linear_probe")
class LinearProbe(TransferStrategy):
    """Only the new head trains; the backbone is a fixed feature extractor, batch-norm statistics included."""

    summary = (
        "the new head only (by SGD, or in closed form on the cached features); the backbone's batch-norm statistics "
        "are frozen too"
    )
    frozen_backbone = True
    default_learning_rate = 1e-2
    settings = (
        Setting(
            "head_solver",
            str,
            "sgd",
            "sgd: train the head with the Trainer for the run's steps; closed_form: on cached features, fit it in one "
            "L-BFGS solve of L2-regularised logistic regression (single-label), C by cross-validation",
            check=one_of("sgd", "closed_form"),
        ),
        HEAD_C,
    )

    def closed_form_head(self) -> ClosedFormHead | None:
        return ClosedFormHead(self.setting("head_c")) if self.setting("head_solver") == "closed_form" else None

    def self_training_head(self) -> ClosedFormHead | None:
        """Closed form unless the user asked for SGD: each round of self-training is a fit of seconds."""
        return ClosedFormHead(self.setting("head_c")) if self.args.head_solver != "sgd" else None

    def apply(self, context: StrategyContext) -> None:
        from torch import nn

        view = context.view
        set_trainable(view, view.body(), False)
        set_trainable(view, view.head, True)
        freeze_batchnorm_statistics(nn.ModuleList(modules_owning(view.model, set(view.body()))))


@register_strategy("freeze")
class FreezeFirstBlocks(TransferStrategy):
    """Freeze the stem and the first ``--freeze_blocks`` blocks; later blocks and the head train.

    Early blocks hold generic features (edges, textures; sub-word statistics) worth keeping; late ones are task-bound.
    """

    summary = "all but the stem and the first N blocks; frozen blocks keep their batch-norm statistics"
    settings = (
        Setting(
            "freeze_blocks",
            int,
            None,
            "freeze the stem and the first N blocks of the backbone",
            check=non_negative,
            default_text="half the backbone's blocks, rounded down: 8 of EfficientNet-Lite0's 16",
        ),
        TRAIN_BN,
    )

    def apply(self, context: StrategyContext) -> None:
        from torch import nn

        view = context.view
        if self.args.freeze_blocks is None:  # half, as measured on Lite0 (RESULTS.md); kept as if given, so the
            self.args.freeze_blocks = view.num_blocks // 2  # saved config re-runs it and the card names the count
        n = int(self.args.freeze_blocks)
        check_block_count(n, view, "--freeze_blocks")
        frozen = [name for group in ([view.stem, *view.blocks[:n]] if n else []) for name in group]
        for param in view.model.parameters():
            param.requires_grad_(True)
        set_trainable(view, frozen, False)
        freeze_batchnorm_statistics(nn.ModuleList(modules_owning(view.model, set(frozen))))
        if not self.setting("train_bn"):
            freeze_all_batchnorm(view.model)


@register_strategy("bitfit")
class BitFit(TransferStrategy):
    """Only the bias terms of the backbone, and the head, train (Ben Zaken et al., 2022): ~0.1 % of the parameters."""

    summary = "only the backbone's biases + the head"
    default_learning_rate = 1e-3

    def apply(self, context: StrategyContext) -> None:
        view = context.view
        head = set(view.head)
        for name, param in view.model.named_parameters():
            param.requires_grad_(name in head or name.endswith(".bias"))


def check_block_count(n: int, view, flag: str) -> None:
    if n > view.num_blocks:
        raise ConfigError(
            f"{flag} {n} exceeds the {view.num_blocks} blocks of this backbone "
            f"({', '.join(view.block_names)}); use at most {view.num_blocks}."
        )


def freeze_all_batchnorm(model: nn.Module) -> None:
    """``--train_bn false``: every batch-norm layer keeps its pretrained statistics and affine parameters."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for param in module.parameters(recurse=False):
                param.requires_grad_(False)
    freeze_batchnorm_statistics(model)
