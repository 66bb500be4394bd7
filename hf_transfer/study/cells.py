"""A study's cells: checkpoint × strategy × labelled examples per class × seed (+ the same architecture from scratch).

Each cell is an ordinary run with its own directory, model and card (``runs/<model>/<strategy>/n<size>-s<seed>/``);
what makes the cells comparable is in their configs: one split seed (the same held-out evaluation set for every
cell), the cell's seed for the nested per-class sample, the initialisation and the data order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILENAME
from ..recipe import RecipeConfig, replace_training, resolve_config, unresolved_copy
from ..run_record import RunRecord
from ..strategies import restricted_to
from ..strategies.compose import given_settings
from .summary import UNLABELED_SUFFIX

SCRATCH = "scratch"  # the strategy label of from-scratch cells (trained with `full`)
ZERO_SHOT = "zero_shot"  # the strategy label of size-0 cells: a text head from the label descriptions, no training
ZERO_SHOT_SETTINGS = ("label_descriptions", "label_template")  # data settings only zero-shot cells read
# What only those cells read: the unlabelled source and the self-training settings
UNLABELED_DATA_SETTINGS = ("unlabeled_file", "unlabeled_dir", "unlabeled_dataset", "max_unlabeled_samples")
SELF_TRAINING_SETTINGS = ("self_training_rounds", "pseudo_labels_per_class")
CELL_FILENAME = "study_cell.json"  # what a finished cell's directory records about the cell it ran


@dataclass(frozen=True)
class Cell:
    model: str
    strategy: str  # a registered strategy or composition; `full` for scratch cells
    from_scratch: bool
    train_size: int | None  # labelled examples per class; None: all of them
    seed: int
    unlabeled: bool = False  # self-trained on the study's unlabelled examples (the twin of the cell without)

    @property
    def label(self) -> str:
        if self.from_scratch:
            return SCRATCH
        return f"{self.strategy}{UNLABELED_SUFFIX}" if self.unlabeled else self.strategy

    @property
    def size_text(self) -> str:
        return "all" if self.train_size is None else str(self.train_size)

    def run_dir(self) -> str:
        """Relative to the study's output dir."""
        return f"runs/{model_slug(self.model)}/{self.label}/n{self.size_text}-s{self.seed}"

    def describe(self) -> str:
        return f"{model_slug(self.model)} {self.label} n={self.size_text} seed={self.seed}"


def model_slug(reference: str) -> str:
    """A directory name for a model reference: ``builtin:efficientnet_lite0`` → ``efficientnet_lite0``,
    ``timm/resnet50.a1_in1k`` → ``timm--resnet50.a1_in1k``, a local path → its last component."""
    name = reference.removeprefix("builtin:").removeprefix("hf-hub:").rstrip("/")
    if Path(name).exists():
        name = Path(name).name
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name)


def enumerate_cells(
    models: list[str],
    strategies: list[str],
    sizes: list[int | None],
    seeds: list[int],
    scratch: bool,
    self_trained: tuple[str, ...] = (),
) -> list[Cell]:
    """Every cell, grouped so that a model's frozen features are encoded by its first cells and reused after. Size 0
    is one zero-shot cell per model (it trains nothing, so neither the strategy nor the seed changes it). Each of the
    ``self_trained`` strategies also runs with the study's unlabelled examples, beside the same cell without them."""
    cells = []
    trained = [size for size in sizes if size != 0]
    for model in models:
        if 0 in sizes:
            cells.append(Cell(model, ZERO_SHOT, False, 0, seeds[0]))
        for strategy in strategies:
            cells += [Cell(model, strategy, False, size, seed) for seed in seeds for size in trained]
            if strategy in self_trained:
                cells += [Cell(model, strategy, False, size, seed, True) for seed in seeds for size in trained]
        if scratch:
            cells += [Cell(model, "full", True, size, seed) for seed in seeds for size in trained]
    return cells


def cell_config(base: RecipeConfig, cell: Cell, study_dir: Path, split_seed: int) -> RecipeConfig:
    """The cell's run: the base config with the cell's model, strategy, data size and seeds; settings the cell's
    strategy does not read are dropped (``--freeze_blocks`` goes to the `freeze` cells only). A zero-shot cell leaves
    the strategy to the recipe (which builds the head from ``--label_descriptions``) and is the only one to get them.
    """
    config = unresolved_copy(base)
    config.model = dataclasses.replace(config.model, model_name_or_path=cell.model, from_scratch=cell.from_scratch)
    zero_shot = cell.train_size == 0
    if zero_shot:
        unset = dict.fromkeys(["strategy", *given_settings(config.strategy)])
        config.strategy = dataclasses.replace(config.strategy, **unset)
    else:
        config.strategy = restricted_to(config.strategy, cell.strategy)
    config.data = dataclasses.replace(
        config.data,
        train_samples_per_class=cell.train_size,
        sampling_seed=cell.seed,
        split_seed=split_seed,
        **({} if zero_shot else dict.fromkeys(ZERO_SHOT_SETTINGS)),
        **({} if cell.unlabeled else dict.fromkeys(UNLABELED_DATA_SETTINGS)),
    )
    config.run = dataclasses.replace(config.run, overwrite_output_dir=True)
    if not cell.unlabeled:
        config.run = dataclasses.replace(
            config.run, **dict.fromkeys(SELF_TRAINING_SETTINGS), pseudo_label_threshold=0.0
        )
    config.training = replace_training(
        config.training, seed=cell.seed, data_seed=None, output_dir=str(study_dir / cell.run_dir()), push_to_hub=False
    )
    return resolve_config(config)


def config_digest(config: RecipeConfig) -> str:
    """What a cell's result depends on (its whole resolved config but where it is written)."""
    settings = config.to_dict()
    for path in ("output_dir", "logging_dir", "run_name"):
        settings["training"].pop(path, None)
    settings["run"].pop("overwrite_output_dir", None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished(study_dir: Path, cell: Cell, digest: str) -> bool:
    """A cell is done when its run finished (results and config written) with the same settings as now."""
    folder = study_dir / cell.run_dir()
    try:
        recorded = json.loads((folder / CELL_FILENAME).read_text())
    except (OSError, ValueError):
        return False
    return (
        recorded.get("digest") == digest
        and (folder / "all_results.json").is_file()
        and (folder / CONFIG_FILENAME).is_file()
    )


def mark_finished(study_dir: Path, cell: Cell, digest: str, wall_time: float) -> None:
    record = {
        **dataclasses.asdict(cell),
        "digest": digest,
        "wall_time": round(wall_time, 2),
        "study_dir": "../../../..",  # from the cell's directory: where a push of the cell finds the study
    }
    (study_dir / cell.run_dir() / CELL_FILENAME).write_text(json.dumps(record, indent=2))


@dataclass(frozen=True)
class CellFiles:
    """What a finished cell's directory holds: the run's results and record, and the study's note on the cell."""

    results: dict[str, Any]  # all_results.json
    record: RunRecord  # the run's own record (hf_transfer_config.json)
    wall_time: float  # the cell's wall time, as the study measured it (study_cell.json)


def read_cell_files(study_dir: Path, cell: Cell) -> CellFiles:
    """A finished cell's own files."""
    folder = study_dir / cell.run_dir()
    results = json.loads((folder / "all_results.json").read_text())
    record = RunRecord.of_run_config(json.loads((folder / CONFIG_FILENAME).read_text()))
    noted = json.loads((folder / CELL_FILENAME).read_text())
    return CellFiles(results, record, float(noted.get("wall_time") or record.wall_time_s or 0.0))
