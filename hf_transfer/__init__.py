"""hf_transfer: adapt pretrained timm and BERT-family checkpoints to new tasks with a chosen transfer strategy.

Note: the unrelated Rust download accelerator published on PyPI as ``hf-transfer`` installs the same top-level
``hf_transfer`` package; the two cannot share an environment.

The public names below are imported on first use (PEP 562): ``import hf_transfer`` and the ``hf-transfer`` command's
light subcommands then cost no torch or transformers import. ``import hf_transfer`` still registers the image+text
model with transformers' Auto API (what the pushed model cards promise): the registration runs as soon as transformers'
Auto model classes are imported, so it never costs a run that does not use them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name, and the module that defines it.
_EXPORTS = {
    "ConfigError": "exceptions",
    "DataError": "exceptions",
    "DataArguments": "config",
    "FusionArguments": "config",
    "ModelArguments": "config",
    "RunArguments": "config",
    "push_to_hub": "hub",
    "FusionConfig": "models.fusion",
    "FusionForClassification": "models.fusion",
    "RecipeConfig": "recipe",
    "default_training_arguments": "recipe",
    "parse_config": "recipe",
    "resolve_config": "recipe",
    "Setting": "strategies",
    "StrategyArguments": "strategies",
    "TransferStrategy": "strategies",
    "get_strategy_class": "strategies",
    "list_strategies": "strategies",
    "register_strategy": "strategies",
    "StudySettings": "study",
    "study": "study",
    "FineTuneResult": "training",
    "PreparedRun": "training",
    "build_transfer_trainer": "training",
    "fine_tune": "training",
    "prepare": "training",
}

__all__ = [
    "ConfigError",
    "DataArguments",
    "DataError",
    "FineTuneResult",
    "FusionArguments",
    "FusionConfig",
    "FusionForClassification",
    "ModelArguments",
    "RecipeConfig",
    "PreparedRun",
    "RunArguments",
    "Setting",
    "StrategyArguments",
    "StudySettings",
    "TransferStrategy",
    "build_transfer_trainer",
    "default_training_arguments",
    "fine_tune",
    "get_strategy_class",
    "list_strategies",
    "parse_config",
    "prepare",
    "push_to_hub",
    "register_strategy",
    "resolve_config",
    "study",
]  # the same names as _EXPORTS (a literal, for tools that read it)

if TYPE_CHECKING:
    from .config import DataArguments, FusionArguments, ModelArguments, RunArguments
    from .exceptions import ConfigError, DataError
    from .hub import push_to_hub
    from .models.fusion import FusionConfig, FusionForClassification
    from .recipe import RecipeConfig, default_training_arguments, parse_config, resolve_config
    from .strategies import (
        Setting,
        StrategyArguments,
        TransferStrategy,
        get_strategy_class,
        list_strategies,
        register_strategy,
    )
    from .study import StudySettings, study
    from .training import FineTuneResult, PreparedRun, build_transfer_trainer, fine_tune, prepare


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """``study`` is both a subpackage and the function this package exports: importing the subpackage (``import
    hf_transfer.study`` anywhere) must not replace the exported function with the module, as it would by default."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


_AUTO_MODELS = "transformers.models.auto.modeling_auto"


class _RegisterWithAutoClasses(importlib.abc.MetaPathFinder):
    """Imports :mod:`hf_transfer.models.fusion` (whose import registers the image+text model with ``AutoConfig`` and
    ``AutoModelForSequenceClassification``) right after transformers' Auto model classes are first imported."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != _AUTO_MODELS:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def execute_then_register(module: Any) -> None:
            execute(module)
            importlib.import_module(".models.fusion", __name__)

        spec.loader.exec_module = execute_then_register  # type: ignore[method-assign]
        return spec


if _AUTO_MODELS in sys.modules:
    importlib.import_module(".models.fusion", __name__)
elif not any(isinstance(finder, _RegisterWithAutoClasses) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithAutoClasses())
