"""Transfer strategies, selected by name. Importing this package registers the built-in ones."""

from . import freezing  # noqa: F401  (registers linear_probe, freeze, full)
from .base import TransferStrategy, freeze_batchnorm_statistics
from .registry import get_strategy_class, list_strategies, register_strategy

__all__ = [
    "TransferStrategy",
    "freeze_batchnorm_statistics",
    "get_strategy_class",
    "list_strategies",
    "register_strategy",
]
