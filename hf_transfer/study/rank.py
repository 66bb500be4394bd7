"""Which checkpoint, before fine-tuning any: score each model's frozen features on the user's data.

Each model's pooled features come from the frozen-feature cache (a linear probe's prepared run encodes them once and
keeps them, so the study's linear-probe cells reuse them), and are scored with LogME (You et al., 2021) and a
closed-form linear probe (:mod:`hf_transfer.study.transferability`). Seconds to minutes, against hours of fine-tuning.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ConfigError
from ..recipe import RecipeConfig, TaskArguments, parse_arguments, resolve_config
from ..training import prepare
from ..training.prefix_cache import CachedRows
from .cells import Cell, cell_config
from .transferability import RankingScore, best_first, score_features

logger = logging.getLogger(__name__)


def rank_models(
    base: RecipeConfig, models: list[str], train_size: int | None, seed: int, split_seed: int
) -> list[RankingScore]:
    """LogME and linear-probe scores of each model's frozen features on the training examples a cell of
    ``train_size`` per class and ``seed`` trains on; best first."""
    check_model_references(base, models)
    scores = []
    for model in models:
        started = time.perf_counter()
        config = cell_config(
            base, Cell(model, "linear_probe", False, train_size, seed), _unwritten_study_dir(base), split_seed
        )
        config.run = dataclasses.replace(config.run, cache_frozen_features=True)
        prepared = prepare(config)
        train = prepared.task.train_dataset
        if not isinstance(train, CachedRows):
            raise ConfigError(
                f"rank: {model!r}: its frozen features could not be cached for this task (see the log), so there is "
                "nothing to score; rank models whose pooled features the cache supports."
            )
        score = score_features(model, train.tensors["features"].float().numpy(), np.asarray(train.labels))
        scores.append(dataclasses.replace(score, seconds=time.perf_counter() - started))  # encoding included
        logger.info("Ranked %s: LogME %.4f, linear probe %.4f", model, score.logme, score.linear_probe)
    return best_first(scores)


def ranking_table(scores: list[RankingScore]) -> str:
    lines = [f"{'model':<48} {'LogME':>9} {'linear probe':>13} {'examples':>9} {'dim':>6} {'seconds':>8}"]
    for s in scores:
        lines.append(
            f"{s.model:<48} {s.logme:>9.4f} {s.linear_probe:>13.4f} {s.num_examples:>9} {s.feature_dim:>6} "
            f"{s.seconds:>8.1f}"
        )
    return "\n".join(lines)


def _unwritten_study_dir(base: RecipeConfig):
    """Ranking prepares runs but never trains or saves them: their output dir is never created."""
    from pathlib import Path

    return Path(base.training.output_dir) / "ranking"


@dataclass
class RankArguments(TaskArguments):
    """``hf-transfer rank``'s own flags; every other flag is the task's recipe flag (``--seed`` picks the sample)."""

    models: str = field(kw_only=True, metadata={"help": "comma-separated checkpoints to score (required)"})
    train_size: str = field(
        default="all",
        metadata={"help": "score on this many labelled examples per class (nested like a study's), or 'all'"},
    )

    @staticmethod
    def recipe_defaults(task: str) -> dict[str, int]:
        return {"seed": 0}  # the sample seed: a study's first seed

    def model_list(self) -> list[str]:
        models = [m.strip() for m in self.models.split(",") if m.strip()]
        if not models:
            raise ConfigError(f"--models: give a comma-separated list of checkpoints, got {self.models!r}.")
        return models

    def size(self) -> int | None:
        """``--train_size`` as examples per class (None: all); one line when it is neither a count > 0 nor 'all'."""
        if self.train_size.strip().lower() == "all":
            return None
        try:
            size = int(self.train_size)
        except ValueError:
            size = 0
        if size <= 0:
            raise ConfigError(f"--train_size: labelled examples per class (> 0) or 'all', got {self.train_size!r}.")
        return size


def rank_from_argv(argv: list[str]) -> str:
    """``hf-transfer rank --models a,b,c [--train_size N|all] [--seed S] <data flags>``: the ranking as a table."""
    base, (arguments,) = parse_arguments(argv, task=None, commands=(RankArguments,), prog="hf-transfer rank")
    models, size = arguments.model_list(), arguments.size()
    base.model.model_name_or_path = models[0]
    check_model_references(base, models)
    base = resolve_config(base)
    # The held-out split follows --split_seed, else the training seed's own default (as a study's does): --seed here
    # is the sample's seed, so that a ranking scores the examples of a study's first-seed cells.
    split_seed = base.data.split_seed if base.data.split_seed is not None else _default_training_seed()
    return ranking_table(rank_models(base, models, size, base.training.seed, split_seed))


def check_model_references(base: RecipeConfig, models: list[str]) -> None:
    """Every ``--models`` reference resolves (a timm name, a Hub id, a directory, a checkpoint file) before any work:
    a typo in the last one fails in one line, not after the first models were scored or trained."""
    from ..config import IMAGE_CLASSIFICATION
    from ..models.references import resolve_image_source, resolve_text_source

    resolve = resolve_image_source if base.task == IMAGE_CLASSIFICATION else resolve_text_source
    for model in models:
        try:
            resolve(dataclasses.replace(base.model, model_name_or_path=model))
        except ConfigError as err:
            message = str(err).removeprefix("--model_name_or_path")
            raise ConfigError(f"--models{message}" if message != str(err) else f"--models {model!r}: {err}") from None


def _default_training_seed() -> int:
    from transformers import TrainingArguments

    return next(f.default for f in dataclasses.fields(TrainingArguments) if f.name == "seed")
