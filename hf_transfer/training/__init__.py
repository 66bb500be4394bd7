"""Training: ``prepare(config)`` → ``build_transfer_trainer`` → ``fine_tune``; tasks, metrics, feature caches.

The names below are imported on first use (PEP 562), so that a light submodule (the feature store behind
``hf-transfer cache``) is importable without the Trainer, torch and the task code.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "prepare": "prepare",
    "PreparedRun": "run_types",
    "PreparedTask": "run_types",
    "ResolvedRun": "run_types",
    "FineTuneResult": "run",
    "fine_tune": "run",
    "TransferTrainer": "trainer",
    "build_transfer_trainer": "trainer",
}

__all__ = [
    "FineTuneResult",
    "PreparedRun",
    "PreparedTask",
    "ResolvedRun",
    "TransferTrainer",
    "build_transfer_trainer",
    "fine_tune",
    "prepare",
]

if TYPE_CHECKING:
    from .prepare import prepare
    from .run import FineTuneResult, fine_tune
    from .run_types import PreparedRun, PreparedTask, ResolvedRun
    from .trainer import TransferTrainer, build_transfer_trainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``prepare`` is both a submodule and the function it defines: importing the submodule (``from .prepare import
    ...`` anywhere) must not replace the package's ``prepare`` function with the module, as it would by default."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
