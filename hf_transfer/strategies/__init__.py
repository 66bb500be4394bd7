"""Transfer strategies, selected by name and composable with '+'. Importing this package registers the built-ins."""

from . import adapters, freezing, learning_rates, regularisers, schedules, wise_ft  # noqa: F401  (registration)
from .base import StrategyContext, TransferStrategy, freeze_batchnorm_statistics
from .compose import ComposedStrategy, build_strategy, validate_strategy_args
from .registry import get_strategy_class, list_strategies, register_strategy

__all__ = [
    "ComposedStrategy",
    "StrategyContext",
    "TransferStrategy",
    "build_strategy",
    "freeze_batchnorm_statistics",
    "get_strategy_class",
    "list_strategies",
    "register_strategy",
    "validate_strategy_args",
]
