"""``hf-transfer study``: what transfer buys on your data, in one command.

Checkpoints × strategies × labelled examples per class × seeds, plus the same architecture trained from scratch, all
evaluated on one fixed held-out set; then a report of the gain over scratch, the labels saved and the time spent, and
which configuration to use at each data size. Cells are ordinary runs: a finished cell is skipped when the same
command runs again, a half-finished one is redone, so a killed study resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import IMAGE_CLASSIFICATION, MULTIMODAL_CLASSIFICATION, SINGLE_LABEL, TEXT_CLASSIFICATION
from ..exceptions import ConfigError
from ..recipe import RecipeConfig, TaskArguments, parse_arguments, resolve_config, unlabeled_sources
from ..strategies import ComposedStrategy, StrategySpec, restricted_to, settings_read_by
from ..strategies.compose import given_settings
from ..training.output_dir import OutputDirLock
from .cells import ZERO_SHOT_SETTINGS, Cell, cell_config, config_digest, enumerate_cells, finished, read_cell_files
from .rank import check_model_references, rank_models
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
    check_zero_shot(base, settings.train_sizes)
    base = resolve_base(base, settings.strategies)
    with OutputDirLock(base.training.output_dir):  # one study per directory: a second is refused in one line
        return _run_study(base, settings, command, started)


def _run_study(base: RecipeConfig, settings: StudySettings, command: str, started: float) -> StudySummary:
    study_dir = Path(base.training.output_dir)
    split_seed = base.data.split_seed if base.data.split_seed is not None else base.training.seed
    models = settings.models or [base.model.model_name_or_path]
    check_model_references(base, models)  # every one, before any data is read or model built
    class_counts = check_sizes(base, settings.train_sizes, split_seed)
    self_trained = self_training_strategies(base, settings.strategies)
    cells = enumerate_cells(
        models, settings.strategies, settings.train_sizes, settings.seeds, settings.scratch, self_trained
    )
    configs = {cell: cell_config(base, cell, study_dir, split_seed) for cell in cells}
    digests = {cell: config_digest(config) for cell, config in configs.items()}
    todo = [cell for cell in cells if not finished(study_dir, cell, digests[cell])]
    logger.info("Study: %d cells, %d already finished, %d to run.", len(cells), len(cells) - len(todo), len(todo))
    ranking = []
    if len(models) > 1 and set(settings.train_sizes) != {0}:  # ranking needs labelled examples
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
    if any(s is not None and s < 0 for s in sizes):
        raise ConfigError(
            f"--train_sizes are labelled examples per class (0: zero-shot) or 'all', got {_sizes_text(sizes)}."
        )
    if len(set(settings.seeds)) != len(settings.seeds):
        raise ConfigError(f"--seeds lists a seed twice: {settings.seeds}.")
    if settings.max_parallel < 1:
        raise ConfigError(f"--max_parallel must be >= 1, got {settings.max_parallel}.")
    if settings.backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {settings.backend!r}.")


def check_zero_shot(base: RecipeConfig, sizes: list[int | None]) -> None:
    """Size 0 (zero-shot from the label names) is for text; ``--label_descriptions`` and ``--label_template`` are
    for its cells, so they need it."""
    if 0 in sizes and base.task != TEXT_CLASSIFICATION:
        raise ConfigError(
            "--train_sizes 0 (zero-shot from the label names) is for text-classification only: an image needs an "
            "image-text model such as CLIP, which the toolkit lacks."
        )
    given = [name for name in ZERO_SHOT_SETTINGS if getattr(base.data, name) is not None]
    if given and 0 not in sizes:
        raise ConfigError(f"--{given[0]} builds the zero-shot cells' head: add 0 to --train_sizes.")


def resolve_base(base: RecipeConfig, strategies: list[str]) -> RecipeConfig:
    """Resolve the study's base config without its strategy settings, then put them back: a setting only some of the
    study's strategies read (``--freeze_blocks`` for the `freeze` cells) must not fail the others, and each cell keeps
    only what its strategy reads (:func:`cell_config`). A setting none of them reads is an error."""
    given = {name: value for name, value in given_settings(base.strategy).items() if value is not None}
    unread = sorted(set(given) - settings_read_by(strategies))
    if unread:
        raise ConfigError(f"--{unread[0]} is read by none of --strategies {','.join(strategies)}.")
    base.strategy = dataclasses.replace(base.strategy, **dict.fromkeys(given))
    zero_shot = {name: getattr(base.data, name) for name in ZERO_SHOT_SETTINGS}  # for the size-0 cells alone
    base.data = dataclasses.replace(base.data, **dict.fromkeys(zero_shot))
    base = resolve_config(base)
    base.strategy = dataclasses.replace(base.strategy, **given)
    base.data = dataclasses.replace(base.data, **zero_shot)
    if base.data.train_val_split is None:  # every cell is scored on one held-out set, however few the examples
        from ..data.labels import DEFAULT_TRAIN_VAL_SPLIT

        base.data.train_val_split = DEFAULT_TRAIN_VAL_SPLIT
    return base


def self_training_strategies(base: RecipeConfig, strategies: list[str]) -> tuple[str, ...]:
    """With unlabelled examples, the study's strategies that self-train on cached features (a round is a head fit of
    seconds): each runs with and without them. The others would self-train through the Trainer, a training run per
    round and cell, so a study gives them no twin; when no strategy qualifies, one line says which do."""
    source = unlabeled_sources(base.data)
    if not source:
        return ()
    if source[0] == "--empty_labels unlabeled":
        raise ConfigError(
            "study: --empty_labels unlabeled would leave the cells without unlabelled examples nothing to do with "
            "those rows; give them as --unlabeled_file."
        )
    able = tuple(
        name
        for name in strategies
        if ComposedStrategy(restricted_to(base.strategy, name)).self_training_head() is not None
    )
    if not able:
        raise ConfigError(
            f"study: {source[0]}: none of --strategies {','.join(strategies)} can self-train on cached features "
            "(through the Trainer each round would cost a training run per cell); add linear_probe or contrastive, "
            "whose head fits on cached features."
        )
    return able


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
        strategy=cell.label if cell.unlabeled else cell.strategy,
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


@dataclass
class StudyArguments(TaskArguments):
    """The study's own flags (``hf-transfer study``); every other flag is the base recipe's."""

    strategies: str = field(
        default="linear_probe,full", metadata={"help": "comma-separated strategies or compositions (full+l2sp)"}
    )
    train_sizes: str = field(
        default="8,32,128,all",
        metadata={"help": "labelled examples per class, nested across sizes; 'all'; 0: zero-shot (text)"},
    )
    seeds: str = field(default="0,1,2", metadata={"help": "one sample and training seed per repeat"})
    models: str | None = field(
        default=None, metadata={"help": "several checkpoints, ranked (LogME) before fine-tuning"}
    )
    scratch: bool = field(default=True, metadata={"help": "the random-init baseline"})
    max_parallel: int = field(default=1, metadata={"help": "cells run at once (one warm worker process each)"})
    backend: str = field(default="local", metadata={"help": "local, or ray for a Ray cluster"})
    ray_address: str | None = field(default=None, metadata={"help": "the Ray cluster to join (--backend ray)"})

    @staticmethod
    def recipe_defaults(task: str) -> dict[str, str]:
        return {"output_dir": f"outputs/study_{task.split('-')[0]}"}

    def settings(self) -> StudySettings:
        """The flags as :class:`StudySettings`; a malformed list is one line naming its flag."""
        return StudySettings(
            strategies=_list(self.strategies, "--strategies"),
            train_sizes=[_parse_size(text) for text in _list(self.train_sizes, "--train_sizes")],
            seeds=[_integer(text, "--seeds") for text in _list(self.seeds, "--seeds")],
            models=_list(self.models, "--models") if self.models else None,
            scratch=self.scratch,
            max_parallel=self.max_parallel,
            backend=self.backend,
            ray_address=self.ray_address,
        )


def study_from_argv(argv: list[str]) -> StudySummary:
    """``hf-transfer study``: the study flags and the recipe flags, parsed together (one --help, one --config)."""
    base, (arguments,) = parse_arguments(argv, task=None, commands=(StudyArguments,), prog="hf-transfer study")
    settings = arguments.settings()
    if settings.models and base.model.model_name_or_path is None:
        base.model.model_name_or_path = settings.models[0]
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


def _list(text: str | list, flag: str) -> list[str]:
    """A comma-separated flag (or a YAML list) as its items."""
    parts = text if isinstance(text, list) else str(text).split(",")
    items = [str(item).strip() for item in parts if str(item).strip()]
    if not items:
        raise ConfigError(f"{flag}: give a comma-separated list, got {text!r}.")
    return items


def _parse_size(text: str) -> int | None:
    return None if text.lower() == "all" else _integer(text, "--train_sizes")


def _integer(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a whole number.") from None


def _sizes_text(sizes: list[int | None]) -> str:
    return ",".join("all" if s is None else str(s) for s in sizes)
