"""Training: ``prepare(config)`` → ``build_transfer_trainer`` → ``fine_tune``; tasks, metrics, feature caches."""

from .prepare import prepare
from .prepared import PreparedRun, PreparedTask
from .run import FineTuneResult, fine_tune
from .trainer import TransferTrainer, build_transfer_trainer

__all__ = [
    "FineTuneResult",
    "PreparedRun",
    "PreparedTask",
    "TransferTrainer",
    "build_transfer_trainer",
    "fine_tune",
    "prepare",
]
