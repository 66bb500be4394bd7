"""The transfer study: what transfer buys on your data (gain over scratch, labels saved, time), and which checkpoint
and strategy to use for how much data; plus ranking candidate checkpoints before fine-tuning any of them."""

from .rank import rank_from_argv, rank_models
from .study import StudySettings, study, study_from_argv

__all__ = ["StudySettings", "rank_from_argv", "rank_models", "study", "study_from_argv"]
