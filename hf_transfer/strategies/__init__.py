"""Transfer strategies, selected by name and composable with '+'. Importing this package registers the built-ins."""

from .arguments import StrategyArguments, strategy_arguments_class
from .base import OptimizerSettings, StrategyContext, TransferStrategy, freeze_batchnorm_statistics
from .compose import ComposedStrategy, check_strategy_arguments, strategy_classes
from .registry import get_strategy_class, list_strategies, register_strategy
from .settings import Setting

__all__ = [
    "ComposedStrategy",
    "OptimizerSettings",
    "Setting",
    "StrategyArguments",
    "StrategyContext",
    "TransferStrategy",
    "check_strategy_arguments",
    "freeze_batchnorm_statistics",
    "get_strategy_class",
    "list_strategies",
    "register_strategy",
    "strategy_arguments_class",
    "strategy_classes",
]
