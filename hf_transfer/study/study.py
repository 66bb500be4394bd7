"""``hf-transfer study``: what transfer buys on your data, in one command.

Checkpoints × strategies × labelled examples per class × seeds, plus the same architecture trained from scratch, all
evaluated on one fixed held-out set; then a report of the gain over scratch, the labels saved and the time spent, and
which configuration to use at each data size. Cells are ordinary runs: a finished cell is skipped when the same
command runs again, a half-finished one is redone, so a killed study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import IMAGE_CLASSIFICATION, MULTIMODAL_CLASSIFICATION, SINGLE_LABEL, TASKS
from ..exceptions import ConfigError
from ..recipe import RecipeConfig, parse_config, resolve_config
from ..strategies import StrategySpec, settings_read_by
from ..strategies.compose import given_settings
from .cells import Cell, cell_config, config_digest, enumerate_cells, finished, read_cell_files
from .rank import rank_models
from .report import write_report
from .runner import BACKENDS, CellJob, CellOutcome, run_cells, threads_per_cell
from .summary import CellResult, StudySummary

logger = logging.getLogger(__name__)


@dataclass
class StudySettings:
    """What the study varies; everything else (data, model, training flags) is the base recipe config's."""

    strategies: list[str] = field(default_factory=lambda: ["linear_probe", "full"])
    train_sizes: list[int | None] = field(default_factory=lambda: [8, 32, 128, None])  # per class; None: all
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    models: list[str] | None = None  # None: the base config's --model_name_or_path
    scratch: bool = True
    max_parallel: int = 1
    backend: str = "local"
    ray_address: str | None = None


def study(base: RecipeConfig, settings: StudySettings, command: str = "") -> StudySummary:
    """Run (or resume) the study in ``base.training.output_dir`` and write its report there."""
    started = time.perf_counter()
    if base.task == MULTIMODAL_CLASSIFICATION:
        raise ConfigError("study: image+text models have no single checkpoint to vary yet; study each tower's task.")
    check_settings(settings)
    base = resolve_base(base, settings.strategies)
    study_dir = Path(base.training.output_dir)
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.training.seed
    models = settings.models or [base.model.model_name_or_path]
    class_counts = check_sizes(base, settings.train_sizes, split_seed)
    cells = enumerate_cells(models, settings.strategies, settings.train_sizes, settings.seeds, settings.scratch)
    configs = {cell: cell_config(base, cell, study_dir, split_seed) for cell in cells}
    digests = {cell: config_digest(config) for cell, config in configs.items()}
    todo = [cell for cell in cells if not finished(study_dir, cell, digests[cell])]
    logger.info("Study: %d cells, %d already finished, %d to run.", len(cells), len(cells) - len(todo), len(todo))
    ranking = []
    if len(models) > 1:
        largest = None if None in settings.train_sizes else max(settings.train_sizes)
        ranking = rank_models(base, models, largest, settings.seeds[0], split_seed)
    threads = threads_per_cell(settings.max_parallel)
    jobs = [CellJob(cell, configs[cell], str(study_dir), digests[cell], threads) for cell in todo]
    outcomes = run_cells(jobs, settings.max_parallel, settings.backend, settings.ray_address, _progress(len(jobs)))
    failed = [o for o in outcomes if o.error]
    results = [cell_result(study_dir, cell) for cell in cells if finished(study_dir, cell, digests[cell])]
    if not results:
        raise ConfigError(f"study: no cell finished; the first failure: {failed[0].error if failed else 'none ran'}")
    first = configs[cells[0]]
    facts = {
        "task": base.task,
        "metric": first.training.metric_for_best_model or "accuracy",
        "greater_is_better": bool(first.training.greater_is_better),
        "eval_examples": _eval_examples(study_dir, cells, digests),
        "eval_set": f"{_eval_examples(study_dir, cells, digests)} held-out examples (split seed {split_seed}), the "
        "same for every cell",
        "dataset": base.data.dataset_name or base.data.train_dir or base.data.train_file,
        "n_classes": len(class_counts),
        "command": command,
        "total_wall_time": time.perf_counter() - started,
        "failed_cells": [f"{o.cell.describe()}: {o.error}" for o in failed],
        "cells_run": len(jobs),
    }
    return write_report(study_dir, results, ranking, facts)


def check_settings(settings: StudySettings) -> None:
    """Bad study flags fail before anything runs, each with one line."""
    for name in settings.strategies:
        StrategySpec.parse(name)  # unknown names (with close ones), bad compositions
    sizes = [s for s in settings.train_sizes]
    if len(set(sizes)) != len(sizes):
        raise ConfigError(f"--train_sizes lists a size twice: {_sizes_text(sizes)}.")
    if any(s is not None and s <= 0 for s in sizes):
        raise ConfigError(f"--train_sizes are labelled examples per class (> 0) or 'all', got {_sizes_text(sizes)}.")
    if len(set(settings.seeds)) != len(settings.seeds):
        raise ConfigError(f"--seeds lists a seed twice: {settings.seeds}.")
    if settings.max_parallel < 1:
        raise ConfigError(f"--max_parallel must be >= 1, got {settings.max_parallel}.")
    if settings.backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {settings.backend!r}.")


def resolve_base(base: RecipeConfig, strategies: list[str]) -> RecipeConfig:
    """Resolve the study's base config without its strategy settings, then put them back: a setting only some of the
    study's strategies read (``--freeze_blocks`` for the `freeze` cells) must not fail the others, and each cell keeps
    only what its strategy reads (:func:`cell_config`). A setting none of them reads is an error."""
    given = {name: value for name, value in given_settings(base.strategy).items() if value is not None}
    unread = sorted(set(given) - settings_read_by(strategies))
    if unread:
        raise ConfigError(f"--{unread[0]} is read by none of --strategies {','.join(strategies)}.")
    base.strategy = dataclasses.replace(base.strategy, **dict.fromkeys(given))
    base = resolve_config(base)
    base.strategy = dataclasses.replace(base.strategy, **given)
    return base


def check_sizes(base: RecipeConfig, sizes: list[int | None], split_seed: int) -> dict[str, int]:
    """Load the data once (the split every cell will see) and refuse a size larger than the smallest class,
    naming it. Returns the training pool's examples per class."""
    from collections import Counter

    from ..data import load_image_data, load_text_data

    data_args = dataclasses.replace(base.data, train_samples_per_class=None, max_train_samples=None)
    data_args.split_seed = split_seed
    loader = load_image_data if base.task == IMAGE_CLASSIFICATION else load_text_data
    data = loader(data_args, seed=split_seed)
    numeric = [s for s in sizes if s is not None]
    if data.problem_type != SINGLE_LABEL:
        if numeric:
            raise ConfigError("--train_sizes: per-class sizes need single-label data; use --train_sizes all.")
        return {}
    counts = Counter(data.label_names[i] for i in data.train[data.label_column])
    smallest_class, smallest = min(sorted(counts.items()), key=lambda item: item[1])  # ties: the first by name
    if numeric and max(numeric) > smallest:
        raise ConfigError(
            f"--train_sizes {max(numeric)}: class {smallest_class!r} has only {smallest} training examples (after "
            f"the held-out evaluation set); use sizes up to {smallest}, or 'all'."
        )
    return dict(counts)


def cell_result(study_dir: Path, cell: Cell) -> CellResult:
    """A finished cell as the report reads it: from its own files only."""
    files = read_cell_files(study_dir, cell)
    results = files.results
    return CellResult(
        model=cell.model,
        strategy=cell.strategy,
        from_scratch=cell.from_scratch,
        train_size=cell.train_size,
        seed=cell.seed,
        train_examples=int(results.get("train_samples", 0)),
        metrics={k: float(v) for k, v in results.items() if k.startswith("eval_") and isinstance(v, (int, float))},
        train_runtime=float(results.get("train_runtime", 0.0)),
        wall_time=files.wall_time,
        trainable_parameters=int(results.get("trainable_parameters", 0)),
        run_dir=cell.run_dir(),
        frozen_features_encoded=int(results.get("frozen_features_encoded", 0)),
        frozen_features_reused=int(results.get("frozen_features_reused", 0)),
    )


def parse_study_argv(argv: list[str]) -> tuple[str, StudySettings, list[str]]:
    """(task, study settings, the remaining recipe flags) from ``hf-transfer study`` arguments."""
    parser = argparse.ArgumentParser(
        prog="hf-transfer study",
        add_help=False,
        description="Study flags (every other flag is the task's recipe flag, listed after these):",
    )
    parser.add_argument("--task", default=IMAGE_CLASSIFICATION, choices=TASKS, help="which recipe every cell runs")
    parser.add_argument(
        "--strategies", default="linear_probe,full", help="comma-separated strategies or compositions (full+l2sp)"
    )
    parser.add_argument(
        "--train_sizes", default="8,32,128,all", help="labelled examples per class, nested across sizes; 'all'"
    )
    parser.add_argument("--seeds", default="0,1,2", help="one sample and training seed per repeat")
    parser.add_argument("--models", default=None, help="several checkpoints, ranked (LogME) before fine-tuning")
    parser.add_argument(
        "--scratch", default="true", choices=["true", "false", "True", "False"], help="the random-init baseline"
    )
    parser.add_argument("--max_parallel", type=int, default=1, help="cells run at once (one process each)")
    parser.add_argument("--backend", default="local", help="local, or ray for a Ray cluster")
    parser.add_argument("--ray_address", default=None, help="the Ray cluster to join (--backend ray)")
    if "-h" in argv or "--help" in argv:
        print(parser.format_help())
    known, rest = parser.parse_known_args(argv)
    settings = StudySettings(
        strategies=_list(known.strategies, "--strategies"),
        train_sizes=[_size(text) for text in _list(known.train_sizes, "--train_sizes")],
        seeds=[_integer(text, "--seeds") for text in _list(known.seeds, "--seeds")],
        models=_list(known.models, "--models") if known.models else None,
        scratch=known.scratch.lower() == "true",
        max_parallel=known.max_parallel,
        backend=known.backend,
        ray_address=known.ray_address,
    )
    return known.task, settings, rest


def study_from_argv(argv: list[str]) -> StudySummary:
    task, settings, rest = parse_study_argv(argv)
    if not any(arg == "--output_dir" or arg.startswith("--output_dir=") for arg in rest):
        rest = [*rest, "--output_dir", f"outputs/study_{task.split('-')[0]}"]
    if settings.models and not any(a.startswith("--model_name_or_path") for a in rest):
        rest = [*rest, "--model_name_or_path", settings.models[0]]
    base = parse_config(rest, task=task, resolve=False)
    return study(base, settings, command=shlex.join(["hf-transfer", "study", *argv]))


def _progress(total: int):
    count = {"done": 0}

    def report(outcome: CellOutcome) -> None:
        count["done"] += 1
        status = f"failed: {outcome.error}" if outcome.error else f"done in {outcome.wall_time:.0f} s"
        print(f"[{count['done']}/{total}] {outcome.cell.describe()}: {status}", file=sys.stderr, flush=True)

    return report


def _eval_examples(study_dir: Path, cells: list[Cell], digests: dict) -> int:
    for cell in cells:
        if finished(study_dir, cell, digests[cell]):
            return int(read_cell_files(study_dir, cell).results.get("eval_samples", 0))
    return 0


def _list(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{flag}: give a comma-separated list, got {text!r}.")
    return items


def _size(text: str) -> int | None:
    return None if text.lower() == "all" else _integer(text, "--train_sizes")


def _integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a whole number.") from None


def _sizes_text(sizes: list[int | None]) -> str:
    return ",".join("all" if s is None else str(s) for s in sizes)
