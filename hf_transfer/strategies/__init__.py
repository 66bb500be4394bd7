"""Transfer strategies, selected by name and composable with '+'. Importing this package registers the built-ins."""

from .arguments import StrategyArguments, strategy_arguments_class
from .base import OptimizerSettings, StrategyContext, TransferStrategy, freeze_batchnorm_statistics
from .compose import ComposedStrategy, check_strategy_arguments
from .registry import get_strategy_class, list_strategies, register_strategy
from .settings import Setting
from .spec import StrategySpec, TowerSpec, restricted_to, settings_read_by

__all__ = [
    "ComposedStrategy",
    "OptimizerSettings",
    "Setting",
    "StrategySpec",
    "StrategyArguments",
    "StrategyContext",
    "TowerSpec",
    "TransferStrategy",
    "check_strategy_arguments",
    "freeze_batchnorm_statistics",
    "get_strategy_class",
    "list_strategies",
    "register_strategy",
    "restricted_to",
    "settings_read_by",
    "strategy_arguments_class",
]
