"""The contract every transfer strategy implements, and how several compose.

A strategy decides *what trains* (``apply``, ``wrap_model``), and may add *how*: parameter groups with their own
learning rates, Trainer callbacks that change the trainable set during training, an extra loss term, a step after
training, its own way of saving. It sees the model through its :class:`~hf_transfer.models.blocks.BlockView`, so one
strategy serves every backbone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from ..exceptions import ConfigError
from .settings import Setting, StrategyArgumentsBase

if TYPE_CHECKING:  # torch is imported where a model is touched: the registry and its table are read without it
    import torch
    from torch import nn
    from transformers import Trainer, TrainerCallback

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


@dataclass(frozen=True)
class OptimizerSettings:
    """What a strategy needs to build optimizer parameter groups the way the Trainer would: the base learning rate,
    the weight decay, and the names the Trainer decays (``Trainer.get_decay_parameter_names``: not biases, not norm
    layers)."""

    learning_rate: float
    weight_decay: float
    decay_names: frozenset[str]
    prefix: str = ""  # where the parameters passed to ``groups`` sit in the model that ``decay_names`` names

    def groups(
        self, named: list[tuple[str, nn.Parameter]], group_name: str, lr_scale: float = 1.0, learning_rate=None
    ) -> list[dict]:
        """The trainable parameters in (up to) two AdamW groups, with and without weight decay."""
        lr = (self.learning_rate if learning_rate is None else learning_rate) * lr_scale
        groups = []
        for decayed in (True, False):
            members = [p for n, p in named if p.requires_grad and (self.prefix + n in self.decay_names) == decayed]
            if members:
                weight_decay = self.weight_decay if decayed else 0.0
                groups.append({"params": members, "lr": lr, "weight_decay": weight_decay, "group_name": group_name})
        return groups

    def within(self, prefix: str) -> OptimizerSettings:
        """The same settings for a submodule at ``prefix`` (e.g. ``"image_tower."``)."""
        return replace(self, prefix=self.prefix + prefix)


@dataclass(frozen=True)
class ClosedFormHead:
    """Fit the head in one solve on the cached features (:mod:`hf_transfer.training.linear_head`), not by SGD."""

    c: float | None = None  # inverse L2 strength; None: chosen by cross-validation on the training features


@dataclass(frozen=True)
class ContrastivePhase:
    """Train the body on pairs of labelled examples before its features are encoded (SetFit's first phase): same
    class → cosine similarity 1, different → 0 (:mod:`hf_transfer.training.contrastive`)."""

    epochs: int  # passes over the labelled examples, each a batch of ``batch_size`` giving all its pairs
    batch_size: int
    learning_rate: float
    pseudo_labels: bool = False  # with unlabelled examples: a second phase on their pseudo-labels' pairs too


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
    # The settings this strategy reads (type, default, help, check); setting any other is an error.
    settings: ClassVar[tuple[Setting, ...]] = ()
    # Strategies it cannot be composed with, and why.
    incompatible: ClassVar[dict[str, str]] = {}
    # What trains / what it adds, for the README's strategy table (markdown; default: the docstring's first sentence).
    summary: ClassVar[str] = ""
    # Reads the raw model inputs during training (LwF's teacher does): frozen features cannot stand in for them.
    needs_raw_inputs: ClassVar[bool] = False
    # The learning rate this strategy trains best at when the user sets none (None: the task's default, which suits
    # full fine-tuning); a zero-initialised head or a small adapter wants far more than a whole network does.
    default_learning_rate: ClassVar[float | None] = None
    # Trains nothing of the backbone: its features are fixed, so by default images are not augmented and the
    # features are encoded once (the frozen-feature cache) instead of every epoch.
    frozen_backbone: ClassVar[bool] = False
    # Chooses something on the validation split (WiSE-FT's alpha): a run without one is refused before training.
    needs_validation: ClassVar[bool] = False
    # The text pooling it needs (None: the model's default): the contrastive phase trains the mean-pooled embedding.
    pooling: ClassVar[str | None] = None

    def __init__(self, args: StrategyArgumentsBase):
        self.args = args

    def setting(self, name: str) -> Any:
        """The user's value of a setting this strategy declares, else its declared default."""
        value = getattr(self.args, name, None)
        return self.declared(name).default if value is None else value

    @classmethod
    def declared(cls, name: str) -> Setting:
        for setting in cls.settings:
            if setting.name == name:
                return setting
        raise KeyError(f"Strategy {cls.name!r} declares no setting {name!r}.")

    @classmethod
    def setting_names(cls) -> set[str]:
        return {setting.name for setting in cls.settings}

    @classmethod
    def validate_args(cls, args: StrategyArgumentsBase) -> None:
        """Reject combinations of settings this strategy cannot honour (each value alone is checked by its
        ``Setting``); runs before any model is built and changes nothing."""

    def apply(self, context: StrategyContext) -> None:
        """Set ``requires_grad`` (and any other state) on ``context.view.model`` before training starts."""

    def wrap_model(self, model: nn.Module, context: StrategyContext) -> nn.Module:
        """Return the model the Trainer should train (e.g. a peft model around it)."""
        return model

    def optimizer_groups(self, model: nn.Module, context: StrategyContext, optimizer: OptimizerSettings):
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

    def closed_form_head(self) -> ClosedFormHead | None:
        """How to fit the head in closed form where the frozen features are cached and the head is one linear layer;
        None: train it with the Trainer, as every other parameter."""
        return None

    def self_training_head(self) -> ClosedFormHead | None:
        """The closed-form head self-training fits each round (with unlabelled data); None: this strategy cannot
        self-train (its training is SGD steps, so a round would retrain it)."""
        return self.closed_form_head()

    def body_phase(self, train_examples: int) -> ContrastivePhase | None:
        """A phase that trains the body on the labelled examples before the run's features are encoded (the
        contrastive strategy's); None: no such phase."""
        return None

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
    from torch import nn

    count = 0
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.train = _stay_in_eval.__get__(layer)  # type: ignore[method-assign]
            layer.eval()
            count += 1
    return count


def keep_in_eval(modules: list[nn.Module]) -> None:
    """Keep each module (and everything inside it) in eval mode, even after ``model.train()``: a frozen prefix is
    then a fixed function of its input (no dropout, no stochastic depth, fixed batch-norm statistics)."""
    for module in modules:
        module.train = _stay_in_eval.__get__(module)  # type: ignore[method-assign]
        module.eval()


def release_batchnorm_statistics(module: nn.Module) -> None:
    from torch import nn

    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and "train" in layer.__dict__:
            del layer.train


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    from torch import nn

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
        for other, why in cls.incompatible.items():
            if other in names:
                raise ConfigError(f"--strategy: {cls.name!r} does not compose with {other!r}: {why}")
