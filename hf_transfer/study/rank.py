"""Which checkpoint, before fine-tuning any: score each model's frozen features on the user's data.

Each model's pooled features come from the frozen-feature cache (a linear probe's prepared run encodes them once and
keeps them, so the study's linear-probe cells reuse them), and are scored with LogME (You et al., 2021) and a
closed-form linear probe (:mod:`hf_transfer.study.ranking`). Seconds to minutes, against hours of fine-tuning.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from ..exceptions import ConfigError
from ..recipe import RecipeConfig
from ..training import prepare
from ..training.feature_cache import CachedRows
from .cells import Cell, cell_config
from .ranking import RankingScore, best_first, score_features

logger = logging.getLogger(__name__)


def rank_models(
    base: RecipeConfig, models: list[str], train_size: int | None, seed: int, split_seed: int
) -> list[RankingScore]:
    """LogME and linear-probe scores of each model's frozen features on the training examples a cell of
    ``train_size`` per class and ``seed`` trains on; best first."""
    scores = []
    for model in models:
        started = time.perf_counter()
        config = cell_config(base, Cell(model, "linear_probe", False, train_size, seed), _nowhere(base), split_seed)
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


def _nowhere(base: RecipeConfig):
    """Ranking prepares runs but never trains or saves them: their output dir is never created."""
    from pathlib import Path

    return Path(base.training.output_dir) / "ranking"


def rank_from_argv(argv: list[str]) -> str:
    """``hf-transfer rank --models a,b,c [--train_size N|all] [--seed S] <data flags>``: the ranking as a table."""
    import argparse

    from ..config import IMAGE_CLASSIFICATION, TASKS
    from ..recipe import parse_config

    parser = argparse.ArgumentParser(prog="hf-transfer rank", add_help=False)
    parser.add_argument("--task", default=IMAGE_CLASSIFICATION, choices=TASKS)
    parser.add_argument("--models", required=True)
    parser.add_argument("--train_size", default="all")
    parser.add_argument("--seed", type=int, default=0)
    known, rest = parser.parse_known_args(argv)
    models = [m.strip() for m in known.models.split(",") if m.strip()]
    size = None if known.train_size == "all" else int(known.train_size)
    base = parse_config([*rest, "--model_name_or_path", models[0]], task=known.task)
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.training.seed
    return ranking_table(rank_models(base, models, size, known.seed, split_seed))
