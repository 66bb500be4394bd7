"""hf_transfer: adapt pretrained timm and BERT-family checkpoints to new tasks with a chosen transfer strategy.

Note: the unrelated Rust download accelerator published on PyPI as ``hf-transfer`` installs the same top-level
``hf_transfer`` package; the two cannot share an environment.
"""

from .config import (
    DataArguments,
    FusionArguments,
    ModelArguments,
    RecipeConfig,
    RunArguments,
    StrategyArguments,
    parse_config,
)
from .exceptions import ConfigError, DataError
from .hub import push_to_hub
from .models.fusion import FusionConfig, FusionForClassification  # registers them with the transformers Auto API
from .strategies import TransferStrategy, get_strategy_class, list_strategies, register_strategy
from .training.run import FineTuneResult, default_training_arguments, fine_tune

__version__ = "0.1.0"

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
    "RunArguments",
    "StrategyArguments",
    "TransferStrategy",
    "default_training_arguments",
    "fine_tune",
    "get_strategy_class",
    "list_strategies",
    "parse_config",
    "push_to_hub",
    "register_strategy",
]
