"""Strategies that choose which blocks train: ``linear_probe``, ``freeze`` (first N blocks), ``full``."""

from __future__ import annotations

from torch import nn

from ..config import StrategyArguments
from ..exceptions import ConfigError
from ..models.blocks import BlockView
from .base import TransferStrategy, freeze_batchnorm_statistics, set_trainable
from .registry import register_strategy


@register_strategy("full")
class FullFineTuning(TransferStrategy):
    """Every parameter trains: the strongest baseline when data is plentiful enough."""

    def apply(self, view: BlockView) -> None:
        for param in view.model.parameters():
            param.requires_grad_(True)


@register_strategy("linear_probe")
class LinearProbe(TransferStrategy):
    """Only the new head trains; the backbone is a fixed feature extractor, batch-norm statistics included."""

    def apply(self, view: BlockView) -> None:
        set_trainable(view, view.body(), False)
        set_trainable(view, view.head, True)
        freeze_batchnorm_statistics(_body_modules(view))


@register_strategy("freeze")
class FreezeFirstBlocks(TransferStrategy):
    """Freeze the stem and the first ``--freeze_blocks`` blocks; later blocks and the head train.

    Early blocks hold generic features (edges, textures; sub-word statistics) worth keeping; late ones are task-bound.
    """

    @classmethod
    def validate_args(cls, args: StrategyArguments) -> None:
        if args.freeze_blocks is None:
            raise ConfigError("--strategy freeze needs --freeze_blocks N (how many blocks from the stem to freeze).")
        if args.freeze_blocks < 0:
            raise ConfigError(f"--freeze_blocks must be >= 0, got {args.freeze_blocks}.")

    def apply(self, view: BlockView) -> None:
        n = self.args.freeze_blocks or 0
        if n > view.num_blocks:
            raise ConfigError(
                f"--freeze_blocks {n} exceeds the {view.num_blocks} blocks of this backbone "
                f"({', '.join(view.block_names)}); use at most {view.num_blocks}."
            )
        frozen = [name for group in ([view.stem, *view.blocks[:n]] if n else []) for name in group]
        for param in view.model.parameters():
            param.requires_grad_(True)
        set_trainable(view, frozen, False)
        frozen_modules = _modules_owning(view.model, set(frozen))
        for module in frozen_modules:
            freeze_batchnorm_statistics(module)


def _modules_owning(model: nn.Module, names: set[str]) -> list[nn.Module]:
    """Leaf modules all of whose own parameters are in ``names`` (so their batch-norm stats freeze with them)."""
    owned = []
    for module_name, module in model.named_modules():
        own = [f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters(recurse=False)]
        if own and all(name in names for name in own):
            owned.append(module)
    return owned


def _body_modules(view: BlockView) -> nn.Module:
    """A container of the modules that own the body's parameters."""
    return nn.ModuleList(_modules_owning(view.model, set(view.body())))
