"""The contract every transfer strategy implements.

A strategy decides *what trains* (``apply``), and may add *how* (parameter groups, callbacks, an extra loss term).
It sees the model only through its :class:`~hf_transfer.models.blocks.BlockView`: one strategy serves every backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from torch import nn

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from ..config import StrategyArguments
    from ..models.blocks import BlockView


class TransferStrategy:
    name: ClassVar[str] = ""

    def __init__(self, args: StrategyArguments):
        self.args = args

    @classmethod
    def validate_args(cls, args: StrategyArguments) -> None:
        """Reject flags this strategy cannot honour; runs before any model is built."""
        if args.freeze_blocks is not None and cls.name != "freeze":
            from ..exceptions import ConfigError

            raise ConfigError(f"--freeze_blocks only applies to --strategy freeze, not {cls.name!r}.")

    def apply(self, view: BlockView) -> None:
        """Set ``requires_grad`` (and any other state) on ``view.model`` before training starts."""
        raise NotImplementedError

    def callbacks(self) -> list[TrainerCallback]:
        return []


def set_trainable(view: BlockView, names: list[str], trainable: bool) -> None:
    for param in view.parameters(names):
        param.requires_grad_(trainable)


def freeze_batchnorm_statistics(module: nn.Module) -> int:
    """Keep every batch-norm layer of ``module`` in eval mode, even after ``model.train()``.

    A frozen backbone must not drift through its running statistics either: the Trainer calls ``model.train()`` every
    step, so the layers' ``train`` is pinned to eval. Returns how many layers were pinned.
    """
    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.train = _stay_in_eval.__get__(layer)  # type: ignore[method-assign]
            layer.eval()
            count += 1
    return count


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)
