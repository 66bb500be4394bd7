"""hf_transfer: adapt pretrained timm and BERT-family checkpoints to new tasks with a chosen transfer strategy.

Note: the unrelated Rust download accelerator published on PyPI as ``hf-transfer`` installs the same top-level
``hf_transfer`` package; the two cannot share an environment.
"""

from .config import DataArguments, FusionArguments, ModelArguments, RunArguments
from .exceptions import ConfigError, DataError
from .hub import push_to_hub
from .models.fusion import FusionConfig, FusionForClassification  # registers them with the transformers Auto API
from .recipe import RecipeConfig, default_training_arguments, parse_config, resolve_config
from .strategies import (
    Setting,
    StrategyArguments,
    TransferStrategy,
    get_strategy_class,
    list_strategies,
    register_strategy,
)
from .study import StudySettings, study  # after .training: the study runs its cells through it
from .training import FineTuneResult, PreparedRun, build_transfer_trainer, fine_tune, prepare

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
]
