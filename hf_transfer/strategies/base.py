"""The contract every transfer strategy implements, and how several compose.

A strategy decides *what trains* (``apply``, ``wrap_model``), and may add *how*: parameter groups with their own
learning rates, Trainer callbacks that change the trainable set during training, an extra loss term, a step after
training, its own way of saving. It sees the model through its :class:`~hf_transfer.models.blocks.BlockView`, so one
strategy serves every backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback

    from ..config import StrategyArguments
    from ..models.blocks import BlockView

# What a strategy controls. A composition takes at most one of each kind, except that it needs no "trainable" one
# (then every parameter trains, as with `full`).
TRAINABLE, LEARNING_RATE, REGULARISER, POST_HOC = "trainable set", "learning rates", "regulariser", "post-hoc"


@dataclass
class SourceModel:
    """The original checkpoint with its source-task head, for strategies that distil from it (LwF)."""

    model: nn.Module
    head: nn.Module  # a copy of the source classifier, applied to the fine-tuned body's features
    forward: Callable[[nn.Module, dict], torch.Tensor]  # (model, batch inputs) -> source-task logits


@dataclass
class StrategyContext:
    """What a strategy may need beyond the model: set by the task before ``apply``."""

    view: BlockView
    task: str
    base_model_reference: str = ""
    # Builds the original checkpoint with its *source* head (e.g. the ImageNet classifier): LwF's teacher.
    source_model_factory: Callable[[], SourceModel] | None = None
    # Saves a model of this task in its native format: save_native(model, output_dir).
    save_native: Callable[[nn.Module, str], None] | None = None


class TransferStrategy:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = TRAINABLE
    # StrategyArguments fields this strategy reads, with their defaults; any other field set is an error.
    flags: ClassVar[dict[str, Any]] = {}

    def __init__(self, args: StrategyArguments):
        self.args = args

    def setting(self, flag: str) -> Any:
        value = getattr(self.args, flag)
        return self.flags[flag] if value is None else value

    @classmethod
    def validate_args(cls, args: StrategyArguments) -> None:
        """Reject settings this strategy cannot honour; runs before any model is built."""

    def apply(self, context: StrategyContext) -> None:
        """Set ``requires_grad`` (and any other state) on ``context.view.model`` before training starts."""

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        """Return the model the Trainer should train (e.g. a peft model around it)."""
        return model

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, learning_rate: float, weight_decay: float):
        """Parameter groups for the optimizer, or None to let the Trainer build its own."""
        return None

    def trainable_over_run(self, context: StrategyContext) -> set[str] | None:
        """Names of every parameter that will train at some point (when the set changes during the run)."""
        return None

    def callbacks(self, context: StrategyContext) -> list[TrainerCallback]:
        return []

    def regularisation(self, model: nn.Module, inputs: dict, outputs: Any) -> dict[str, torch.Tensor]:
        """Extra loss terms, by name; each is added to the loss and logged as its own metric."""
        return {}

    def after_train(self, trainer: Trainer, context: StrategyContext) -> dict[str, float]:
        """Runs after training, before the final evaluation; returns metrics to report."""
        return {}

    def save(self, model: nn.Module, output_dir: str, context: StrategyContext) -> bool:
        """Save the trained model; return False to let the task save it in its native format."""
        return False


def set_trainable(view: BlockView, names: list[str], trainable: bool) -> None:
    for param in view.parameters(names):
        param.requires_grad_(trainable)


def freeze_batchnorm_statistics(module: nn.Module) -> int:
    """Keep every batch-norm layer of ``module`` in eval mode, even after ``model.train()``.

    A frozen backbone must not drift through its running statistics either: the Trainer calls ``model.train()`` every
    step, so the layers' ``train`` is pinned to eval. :func:`release_batchnorm_statistics` undoes it.
    Returns how many layers were pinned.
    """
    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.train = _stay_in_eval.__get__(layer)  # type: ignore[method-assign]
            layer.eval()
            count += 1
    return count


def release_batchnorm_statistics(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and "train" in layer.__dict__:
            del layer.train


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def modules_owning(model: nn.Module, names: set[str]) -> list[nn.Module]:
    """Modules all of whose own parameters are in ``names`` (so their batch-norm statistics freeze with them)."""
    owned = []
    for module_name, module in model.named_modules():
        own = [f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters(recurse=False)]
        if own and all(name in names for name in own):
            owned.append(module)
    return owned


def check_compatible(strategies: list[type[TransferStrategy]]) -> None:
    """One strategy per kind, and no pair declared incompatible (e.g. an adapter with L2-SP)."""
    by_kind: dict[str, str] = {}
    for cls in strategies:
        if cls.kind in by_kind:
            raise ConfigError(
                f"--strategy: {by_kind[cls.kind]!r} and {cls.name!r} both set the {cls.kind}; choose one of them."
            )
        by_kind[cls.kind] = cls.name
    names = {cls.name for cls in strategies}
    for cls in strategies:
        for other, why in getattr(cls, "incompatible", {}).items():
            if other in names:
                raise ConfigError(f"--strategy: {cls.name!r} does not compose with {other!r}: {why}")
