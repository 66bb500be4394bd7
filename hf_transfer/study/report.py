"""The study's report: what transfer learning buys on the user's data, as a pure function of the finished cells.

A *cell* is one training run (checkpoint x strategy x labelled examples per class x seed, plus the same architecture
trained from scratch). The runner collects one :class:`CellResult` per cell; :func:`write_report` turns them into
``study.json`` (every cell and the summary), ``study.csv`` (a row per cell), two figures and a README.md that renders
on the Hub. Nothing here trains, loads a model or reads a run directory, so the same records always give the same
files (the figures byte for byte) and the report can be tested with hand-written numbers.

Conventions: a group is the seeds of one (model, strategy label, size); "size" is the labelled examples per class, or
``"all"`` (the whole training pool, placed after the numeric sizes). "Better" always follows the selection metric's
direction, so a gain is positive when transfer beats scratch, also for a lower-is-better metric such as ``mse``.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..metric_names import metric_info
from .ranking import RankingScore, kendall_tau

__all__ = [
    "CellResult",
    "DataEfficiency",
    "Gain",
    "GroupStats",
    "RankingRow",
    "Recommendation",
    "StudyFacts",
    "StudySummary",
    "TimeSummary",
    "plot_data_efficiency",
    "plot_metric_vs_time",
    "render_report",
    "summarize",
    "write_report",
]

Size = int | str  # labelled examples per class, or ALL

ALL = "all"
SCRATCH = "scratch"  # the label of the baseline: strategy `full` from a random initialisation
SCRATCH_STRATEGY = "full"
TIE_SHARE = 0.005  # configurations closer than this share of the study's metric range count as tied

JSON_FILENAME = "study.json"
CSV_FILENAME = "study.csv"
README_FILENAME = "README.md"
EFFICIENCY_FIGURE = "data_efficiency.png"
TIME_FIGURE = "accuracy_vs_time.png"
TEMPLATE_NAME = "study.md"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "model_cards"

CELL_COLUMNS = (
    "model",
    "strategy",
    "from_scratch",
    "train_size",
    "seed",
    "train_examples",
    "train_runtime",
    "wall_time",
    "trainable_parameters",
    "frozen_features_encoded",
    "frozen_features_reused",
    "run_dir",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SCRATCH_COLOUR = "dimgray"


@dataclass(frozen=True)
class CellResult:
    """One finished cell, as the runner reads it from the cell's run directory."""

    model: str
    strategy: str
    from_scratch: bool
    train_size: int | None  # labelled examples per class; None: the whole training pool
    seed: int
    train_examples: int
    metrics: dict[str, float]  # the Trainer's eval_* metrics
    train_runtime: float
    wall_time: float
    trainable_parameters: int
    run_dir: str  # relative to the study's output directory
    frozen_features_encoded: int = 0
    frozen_features_reused: int = 0

    @property
    def size(self) -> Size:
        return ALL if self.train_size is None else self.train_size

    @property
    def label(self) -> str:
        """The row a cell belongs to: the strategy, or ``scratch`` for the baseline (and ``scratch+x`` otherwise)."""
        if not self.from_scratch:
            return self.strategy
        return SCRATCH if self.strategy == SCRATCH_STRATEGY else f"{SCRATCH}+{self.strategy}"

    def metric(self, name: str) -> float:
        """The cell's value of a metric named without ``eval_``; NaN when the cell did not report it."""
        value = self.metrics.get(f"eval_{name}", self.metrics.get(name))
        return math.nan if value is None else float(value)


@dataclass(frozen=True)
class StudyFacts:
    """What holds for the whole study; ``n_classes`` turns training examples into examples per class (None or 0:
    unknown, e.g. multi-label data, and sizes are then counted in training examples)."""

    task: str
    metric: str  # the selection metric, without ``eval_``
    greater_is_better: bool
    eval_examples: int
    eval_set: str
    dataset: str
    command: str
    total_wall_time: float
    n_classes: int | None = None
    failed_cells: list[str] = field(default_factory=list)  # one line per cell that did not finish

    @classmethod
    def of(cls, facts: StudyFacts | Mapping[str, Any]) -> StudyFacts:
        """The facts as the runner hands them (a dict is fine), with the metric named as the report names it.

        An unknown key raises TypeError: a misspelt fact would otherwise vanish from the report.
        """
        values = asdict(facts) if isinstance(facts, StudyFacts) else dict(facts)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown study facts: {', '.join(sorted(unknown))}")
        values["metric"] = str(values["metric"]).removeprefix("eval_")  # the Trainer accepts either spelling
        values["dataset"] = values.get("dataset") or "the study's training data"
        values["failed_cells"] = list(values.get("failed_cells") or [])
        return cls(**values)


@dataclass(frozen=True)
class GroupStats:
    """The seeds of one (model, strategy label, size): mean and sample std over seeds (std None with one seed)."""

    model: str
    strategy: str
    label: str
    from_scratch: bool
    size: Size
    examples_per_class: float  # the cells' actual training examples per class, averaged over seeds
    seeds: list[int]
    n_seeds: int
    metric_mean: float  # NaN when no seed reported the metric
    metric_std: float | None
    train_runtime_mean: float
    train_runtime_std: float | None
    wall_time_mean: float
    best_seed: int
    best_run_dir: str

    @property
    def is_baseline(self) -> bool:
        return self.label == SCRATCH


@dataclass(frozen=True)
class Gain:
    """How much better a transfer strategy is than scratch of the same model at the same size."""

    model: str
    strategy: str
    size: Size
    gain: float
    metric_mean: float
    scratch_mean: float


@dataclass(frozen=True)
class DataEfficiency:
    """The fewest labels with which a strategy matches what scratch reaches with the most (None: it never does)."""

    model: str
    strategy: str
    reference_size: Size
    reference_examples_per_class: float
    scratch_reference_mean: float
    matching_size: Size | None
    matching_examples_per_class: float | None
    label_saving_factor: float | None


@dataclass(frozen=True)
class Recommendation:
    """The configuration to use at one size: best mean metric, near-ties broken by the lower mean train time."""

    size: Size
    model: str
    strategy: str
    from_scratch: bool
    metric_mean: float
    metric_std: float | None
    train_runtime_mean: float
    seed: int
    run_dir: str  # the best seed's run directory: the model to take
    tie_tolerance: float


@dataclass(frozen=True)
class RankingRow:
    """A checkpoint's cheap scores beside what fine-tuning it actually gave at the largest size."""

    score: RankingScore
    fine_tuned_best: float | None
    fine_tuned_strategy: str | None


@dataclass(frozen=True)
class TimeSummary:
    """Where the study's time went, and how much frozen-feature encoding the cells shared."""

    cells: int
    cells_wall_time: float
    train_runtime: float
    study_wall_time: float
    frozen_features_encoded: int
    frozen_features_reused: int


@dataclass(frozen=True)
class StudySummary:
    """Everything the report states, for the caller (the CLI prints a short table) and for ``study.json``."""

    metric: str
    metric_name: str
    greater_is_better: bool
    sizes: list[Size]
    largest_size: Size
    groups: list[GroupStats]
    gains: list[Gain]
    data_efficiency: list[DataEfficiency]
    recommendations: list[Recommendation]
    ranking: list[RankingRow]
    kendall_tau: float | None  # LogME order vs fine-tuned order; None with fewer than two comparable models
    kendall_tau_linear_probe: float | None
    time: TimeSummary
    failed_cells: list[str]

    def group(self, model: str, label: str, size: Size) -> GroupStats | None:
        return next((g for g in self.groups if (g.model, g.label, g.size) == (model, label, size)), None)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values: NaN becomes null, so the file is strict JSON that any reader accepts."""
        return _json_safe(asdict(self))

    def headline(self) -> str:
        """What the CLI prints when the study ends: the configuration to use at each size, the best label saving and
        any failed cells; the full report is README.md."""
        return _terminal_text(self)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


# --- the summary -----------------------------------------------------------------------------------------------------


def size_order(size: Size) -> tuple[int, int]:
    """Numeric sizes ascending, then ``all``: the whole pool is at least as large as any numeric size."""
    return (1, 0) if size == ALL else (0, int(size))


def _goodness(value: float, greater_is_better: bool) -> float:
    """The metric turned so that larger is always better (the only place the direction is looked at)."""
    return value if greater_is_better else -value


def _examples_per_class(cell: CellResult, n_classes: int | None) -> float:
    """Actual training examples per class (the nominal size can exceed what a small class has); total without
    classes."""
    return cell.train_examples / n_classes if n_classes else float(cell.train_examples)


def _stdev(values: Sequence[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


def _group(cells: Sequence[CellResult], facts: StudyFacts) -> GroupStats:
    """Mean and spread over the seeds of one group; a seed without the metric is left out of its mean."""
    first = cells[0]
    scores = [c.metric(facts.metric) for c in cells]
    finite = [s for s in scores if math.isfinite(s)]
    times = [c.train_runtime for c in cells]
    ranked = sorted(
        zip(cells, scores),
        key=lambda pair: (not math.isfinite(pair[1]), -_goodness(pair[1], facts.greater_is_better), pair[0].seed),
    )
    best = ranked[0][0]
    return GroupStats(
        model=first.model,
        strategy=first.strategy,
        label=first.label,
        from_scratch=first.from_scratch,
        size=first.size,
        examples_per_class=statistics.fmean(_examples_per_class(c, facts.n_classes) for c in cells),
        seeds=sorted(c.seed for c in cells),
        n_seeds=len(finite),
        metric_mean=statistics.fmean(finite) if finite else math.nan,
        metric_std=_stdev(finite),
        train_runtime_mean=statistics.fmean(times),
        train_runtime_std=_stdev(times),
        wall_time_mean=statistics.fmean(c.wall_time for c in cells),
        best_seed=best.seed,
        best_run_dir=best.run_dir,
    )


def _groups(cells: Iterable[CellResult], facts: StudyFacts) -> list[GroupStats]:
    """Groups in report order: by model, transfer strategies before the scratch baseline, sizes ascending."""
    buckets: dict[tuple[str, str, Size], list[CellResult]] = {}
    for cell in cells:
        buckets.setdefault((cell.model, cell.label, cell.size), []).append(cell)
    groups = [_group(sorted(bucket, key=lambda c: c.seed), facts) for bucket in buckets.values()]
    return sorted(groups, key=lambda g: (g.model, g.from_scratch, g.label, size_order(g.size)))


def _gains(groups: list[GroupStats], facts: StudyFacts) -> list[Gain]:
    baselines = {(g.model, g.size): g for g in groups if g.is_baseline and math.isfinite(g.metric_mean)}
    gains = []
    for group in groups:
        scratch = baselines.get((group.model, group.size))
        if group.from_scratch or scratch is None or not math.isfinite(group.metric_mean):
            continue
        difference = _goodness(group.metric_mean - scratch.metric_mean, facts.greater_is_better)
        gains.append(Gain(group.model, group.label, group.size, difference, group.metric_mean, scratch.metric_mean))
    return gains


def _data_efficiency(groups: list[GroupStats], largest: Size, facts: StudyFacts) -> list[DataEfficiency]:
    """Per transfer (model, strategy): the smallest size whose mean matches or beats scratch's mean at the largest."""
    rows = []
    series: dict[tuple[str, str], list[GroupStats]] = {}
    for group in groups:
        if not group.from_scratch:
            series.setdefault((group.model, group.label), []).append(group)
    for (model, label), members in series.items():
        reference = next((g for g in groups if g.is_baseline and (g.model, g.size) == (model, largest)), None)
        if reference is None or not math.isfinite(reference.metric_mean):
            continue
        target = _goodness(reference.metric_mean, facts.greater_is_better)
        matching = next(
            (
                g
                for g in sorted(members, key=lambda g: size_order(g.size))
                if math.isfinite(g.metric_mean) and _goodness(g.metric_mean, facts.greater_is_better) >= target
            ),
            None,
        )
        epc = matching.examples_per_class if matching else None
        rows.append(
            DataEfficiency(
                model=model,
                strategy=label,
                reference_size=largest,
                reference_examples_per_class=reference.examples_per_class,
                scratch_reference_mean=reference.metric_mean,
                matching_size=matching.size if matching else None,
                matching_examples_per_class=epc,
                label_saving_factor=reference.examples_per_class / epc if epc else None,
            )
        )
    return rows


def _tie_tolerance(groups: list[GroupStats]) -> float:
    """A share of the study's range of group means: differences below it are noise, not a reason to pay more time."""
    means = [g.metric_mean for g in groups if math.isfinite(g.metric_mean)]
    return TIE_SHARE * (max(means) - min(means)) if means else 0.0


def _recommend(groups: list[GroupStats], size: Size, tolerance: float, greater_is_better: bool) -> Recommendation:
    candidates = [g for g in groups if g.size == size and math.isfinite(g.metric_mean)]
    best = max(_goodness(g.metric_mean, greater_is_better) for g in candidates)
    tied = [g for g in candidates if _goodness(g.metric_mean, greater_is_better) >= best - tolerance]
    chosen = min(
        tied, key=lambda g: (g.train_runtime_mean, -_goodness(g.metric_mean, greater_is_better), g.model, g.label)
    )
    return Recommendation(
        size=size,
        model=chosen.model,
        strategy=chosen.label,
        from_scratch=chosen.from_scratch,
        metric_mean=chosen.metric_mean,
        metric_std=chosen.metric_std,
        train_runtime_mean=chosen.train_runtime_mean,
        seed=chosen.best_seed,
        run_dir=chosen.best_run_dir,
        tie_tolerance=tolerance,
    )


def _recommendations(groups: list[GroupStats], sizes: list[Size], greater_is_better: bool) -> list[Recommendation]:
    tolerance = _tie_tolerance(groups)
    return [
        _recommend(groups, size, tolerance, greater_is_better)
        for size in sizes
        if any(g.size == size and math.isfinite(g.metric_mean) for g in groups)
    ]


def _best_fine_tuned(groups: list[GroupStats], model: str, size: Size, greater_is_better: bool) -> GroupStats | None:
    candidates = [g for g in groups if (g.model, g.size) == (model, size) and not g.from_scratch]
    candidates = [g for g in candidates if math.isfinite(g.metric_mean)]
    return max(candidates, key=lambda g: _goodness(g.metric_mean, greater_is_better), default=None)


def _ranking(
    groups: list[GroupStats], ranking: Sequence[RankingScore], largest: Size, greater_is_better: bool
) -> list[RankingRow]:
    rows = []
    for score in ranking:
        best = _best_fine_tuned(groups, score.model, largest, greater_is_better)
        rows.append(RankingRow(score, best.metric_mean if best else None, best.label if best else None))
    return rows


def _agreement(rows: list[RankingRow], score: str, greater_is_better: bool) -> float | None:
    """Kendall's tau between a cheap score's order and the fine-tuned order; None below two comparable models."""
    pairs = [
        (getattr(row.score, score), _goodness(row.fine_tuned_best, greater_is_better))
        for row in rows
        if row.fine_tuned_best is not None and math.isfinite(getattr(row.score, score))
    ]
    if len(pairs) < 2:
        return None
    tau = kendall_tau([p[0] for p in pairs], [p[1] for p in pairs])
    return None if math.isnan(tau) else tau


def _time(cells: Sequence[CellResult], facts: StudyFacts) -> TimeSummary:
    return TimeSummary(
        cells=len(cells),
        cells_wall_time=math.fsum(c.wall_time for c in cells),
        train_runtime=math.fsum(c.train_runtime for c in cells),
        study_wall_time=facts.total_wall_time,
        frozen_features_encoded=sum(c.frozen_features_encoded for c in cells),
        frozen_features_reused=sum(c.frozen_features_reused for c in cells),
    )


def summarize(
    cells: Sequence[CellResult], ranking: Sequence[RankingScore], facts: StudyFacts | Mapping[str, Any]
) -> StudySummary:
    """The report's numbers, computed from the cells alone (no files read): what ``study.json`` calls the summary."""
    facts = StudyFacts.of(facts)
    if not cells:
        raise ValueError("a study report needs at least one finished cell")
    groups = _groups(cells, facts)
    sizes = sorted({g.size for g in groups}, key=size_order)
    largest = sizes[-1]
    better = facts.greater_is_better
    rows = _ranking(groups, ranking, largest, better)
    return StudySummary(
        metric=facts.metric,
        metric_name=metric_info(facts.metric).name,
        greater_is_better=better,
        sizes=sizes,
        largest_size=largest,
        groups=groups,
        gains=_gains(groups, facts),
        data_efficiency=_data_efficiency(groups, largest, facts),
        recommendations=_recommendations(groups, sizes, better),
        ranking=rows,
        kendall_tau=_agreement(rows, "logme", better),
        kendall_tau_linear_probe=_agreement(rows, "linear_probe", better),
        time=_time(cells, facts),
        failed_cells=list(facts.failed_cells),
    )


# --- the files -------------------------------------------------------------------------------------------------------


def write_report(
    output_dir: str | Path,
    cells: Sequence[CellResult],
    ranking: Sequence[RankingScore],
    facts: StudyFacts | Mapping[str, Any],
) -> StudySummary:
    """Write study.json, study.csv, both figures and README.md into ``output_dir``; returns the summary.

    Everything is derived from the arguments, so rewriting the report of the same cells changes no byte.
    """
    facts = StudyFacts.of(facts)
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    cells = sorted(cells, key=lambda c: (c.model, c.from_scratch, c.label, size_order(c.size), c.seed))
    summary = summarize(cells, ranking, facts)
    _write_json(root / JSON_FILENAME, cells, summary, facts)
    _write_csv(root / CSV_FILENAME, cells, facts)
    plot_data_efficiency(summary, facts, root / EFFICIENCY_FIGURE)
    plot_metric_vs_time(summary, root / TIME_FIGURE)
    (root / README_FILENAME).write_text(render_report(cells, summary, facts), encoding="utf-8")
    return summary


def _cell_record(cell: CellResult, facts: StudyFacts) -> dict[str, Any]:
    record = asdict(cell)
    record.update(size=cell.size, label=cell.label, examples_per_class=_examples_per_class(cell, facts.n_classes))
    return record


def _write_json(path: Path, cells: Sequence[CellResult], summary: StudySummary, facts: StudyFacts) -> None:
    document = {
        "facts": asdict(facts),
        "cells": [_cell_record(c, facts) for c in cells],
        "summary": summary.to_dict(),
    }
    path.write_text(json.dumps(_json_safe(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_csv(path: Path, cells: Sequence[CellResult], facts: StudyFacts) -> None:
    """One flat row per cell: the fixed columns, then every eval metric any cell reported (blank where absent)."""
    metric_columns = sorted({key for c in cells for key in c.metrics})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*CELL_COLUMNS, "size", "examples_per_class", *metric_columns])
        for cell in cells:
            fixed = [getattr(cell, column) for column in CELL_COLUMNS]
            fixed[CELL_COLUMNS.index("train_size")] = "" if cell.train_size is None else cell.train_size
            metrics = [cell.metrics.get(column, "") for column in metric_columns]
            writer.writerow([*fixed, cell.size, _examples_per_class(cell, facts.n_classes), *metrics])


# --- human-readable numbers ------------------------------------------------------------------------------------------


def format_metric(value: float | None) -> str:
    """Three decimals where a metric usually lives (0.912, 12.345); a readable form for tiny and huge values."""
    if value is None or not math.isfinite(value):
        return "—"
    magnitude = abs(value)
    if magnitude == 0 or 0.001 <= magnitude < 1000:
        return f"{value:.3f}"
    return f"{value:,.0f}" if magnitude >= 1000 else f"{value:.2e}"


def format_gain(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return ("+" if value >= 0 else "−") + format_metric(abs(value))


def format_duration(seconds: float) -> str:
    """Seconds below a minute, minutes below an hour, hours beyond."""
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_count(value: float) -> str:
    """Examples per class: an integer when it is one (they usually are), one decimal otherwise."""
    return f"{round(value):,}" if abs(value - round(value)) < 0.05 else f"{value:,.1f}"


def format_factor(value: float) -> str:
    return f"{value:.0f}×" if value >= 10 else f"{value:.1f}×"


def _mean_std(mean: float, std: float | None, n: int | None = None) -> str:
    text = format_metric(mean)
    if std is not None and math.isfinite(mean):
        text += f" ± {format_metric(std)}"
    return text + (f" (n={n})" if n is not None else "")


def _noun(name: str) -> str:
    """A display name inside a sentence: "Accuracy" → "accuracy", "Macro F1" → "macro F1", "MSE" stays."""
    if name[1:2].islower() and not name.startswith("Pearson"):
        return name[0].lower() + name[1:]
    return name


def _short(model: str) -> str:
    return model.removeprefix("builtin:").split("/")[-1]


def _short_names(models: Iterable[str]) -> dict[str, str]:
    """Figure labels without org or ``builtin:`` prefixes, unless two checkpoints would then look the same."""
    models = sorted(set(models))
    short = {m: _short(m) for m in models}
    return short if len(set(short.values())) == len(models) else {m: m for m in models}


# --- the README ------------------------------------------------------------------------------------------------------


class _Sizes:
    """How each size is written: "5", or "all" with the examples per class it stood for."""

    def __init__(self, summary: StudySummary, per_class: bool = True):
        self.unit = "/class" if per_class else " examples"
        self.per_class = {
            size: statistics.fmean(g.examples_per_class for g in summary.groups if g.size == size)
            for size in summary.sizes
        }

    def header(self, size: Size) -> str:
        return f"all ({format_count(self.per_class[size])}{self.unit})" if size == ALL else f"{size}/class"

    def words(self, size: Size) -> str:
        """The size inside a sentence: "5 labels per class", "all labels (500 per class)"."""
        if size == ALL:
            unit = " per class" if self.unit == "/class" else self.unit
            return f"all labels ({format_count(self.per_class[size])}{unit})"
        return f"{size} label{'s' if size != 1 else ''} per class"


def _table_cell(value: Any) -> str:
    """Text inside a markdown table row: a bare ``|`` would end the cell."""
    return str(value).replace("|", "\\|")


def _row_name(group: GroupStats, short: dict[str, str]) -> list[str]:
    strategy = "*from scratch* (`full`)" if group.is_baseline else f"`{group.label}`"
    return [f"`{short[group.model]}`", strategy]


def _grid(
    summary: StudySummary, short: dict[str, str], text: Callable[[GroupStats], str], transfer_only: bool = False
) -> list[list[str]]:
    """Rows model x strategy label, one column per size; ``text(group)`` fills a cell, "—" where none ran."""
    rows: dict[tuple[str, str], list[str]] = {}
    for group in summary.groups:
        if transfer_only and group.from_scratch:
            continue
        key = (group.model, group.label)
        if key not in rows:
            rows[key] = [*_row_name(group, short), *["—"] * len(summary.sizes)]
        rows[key][2 + summary.sizes.index(group.size)] = text(group)
    return [[_table_cell(value) for value in row] for row in rows.values()]


def _results_cell(uniform_seeds: bool) -> Callable[[GroupStats], str]:
    return lambda g: _mean_std(g.metric_mean, g.metric_std, None if uniform_seeds else g.n_seeds)


def _efficiency_view(summary: StudySummary, sizes: _Sizes, short: dict[str, str], noun: str) -> list[dict[str, str]]:
    rows = []
    for row in summary.data_efficiency:
        matched = row.matching_size is not None
        reference = f"{format_metric(row.scratch_reference_mean)} at {sizes.header(row.reference_size)}"
        factor = format_factor(row.label_saving_factor) if matched else "never"
        if matched and row.matching_size == row.reference_size:
            sentence = (
                f"`{row.strategy}` on `{short[row.model]}` matches scratch's {noun} only with "
                f"{sizes.words(row.reference_size)} as well: no labels saved."
            )
        elif not matched:
            sentence = (
                f"`{row.strategy}` on `{short[row.model]}` never matches scratch's {noun} at "
                f"{sizes.words(row.reference_size)} at any size studied."
            )
        else:
            sentence = (
                f"`{row.strategy}` on `{short[row.model]}` matches scratch's {noun} at "
                f"{sizes.words(row.reference_size)} with {sizes.words(row.matching_size)}: "
                f"{format_factor(row.label_saving_factor)} fewer labels."
            )
        rows.append(
            {
                "model": _table_cell(f"`{short[row.model]}`"),
                "strategy": _table_cell(f"`{row.strategy}`"),
                "reference": reference,
                "matches_at": sizes.header(row.matching_size) if matched else "never",
                "factor": factor,
                "sentence": sentence,
            }
        )
    return rows


def _gain_words(gain: float | None, noun: str) -> str:
    if gain is None:
        return ""
    verb = "beating" if gain >= 0 else "trailing"
    return f"{verb} the same architecture trained from scratch by {format_metric(abs(gain))} {noun}"


def _recommendation_view(
    summary: StudySummary, sizes: _Sizes, short: dict[str, str], noun: str
) -> list[dict[str, Any]]:
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    return [
        {
            "size": sizes.header(r.size),
            "size_words": sizes.words(r.size),
            "model": _table_cell(f"`{r.model}`"),
            "short_model": f"`{short[r.model]}`",
            "strategy": "*from scratch*" if r.strategy == SCRATCH else f"`{r.strategy}`",
            "from_scratch": r.from_scratch,
            "metric": _mean_std(r.metric_mean, r.metric_std),
            "train_time": format_duration(r.train_runtime_mean),
            "run_dir": _table_cell(f"`{r.run_dir}`"),
            "seed": str(r.seed),
            "gain_words": _gain_words(gains.get((r.model, r.strategy, r.size)), noun),
        }
        for r in summary.recommendations
    ]


def _ranking_view(summary: StudySummary) -> list[dict[str, str]]:
    return [
        {
            "model": _table_cell(f"`{row.score.model}`"),
            "logme": f"{row.score.logme:.3f}" if math.isfinite(row.score.logme) else "—",
            "linear_probe": format_metric(row.score.linear_probe),
            "fine_tuned": format_metric(row.fine_tuned_best),
            "strategy": f"`{row.fine_tuned_strategy}`" if row.fine_tuned_strategy else "—",
        }
        for row in summary.ranking
    ]


def _layout(cells: Sequence[CellResult]) -> list[str]:
    """A few cells' directories, enough to show the pattern without listing hundreds."""
    dirs = [c.run_dir for c in cells]
    return dirs if len(dirs) <= 6 else [*dirs[:3], "…", *dirs[-2:]]


def _context(cells: Sequence[CellResult], summary: StudySummary, facts: StudyFacts) -> dict[str, Any]:
    """Everything the template shows, already formatted: the template only lays it out."""
    from huggingface_hub import ModelCardData

    short = _short_names(g.model for g in summary.groups)
    sizes = _Sizes(summary, per_class=bool(facts.n_classes))
    noun = _noun(summary.metric_name)
    seed_counts = {g.n_seeds for g in summary.groups}
    uniform = len(seed_counts) == 1
    efficiency = _efficiency_view(summary, sizes, short, noun)
    return {
        "card_data": ModelCardData(tags=["hf-transfer", "transfer-learning", "transfer-study", facts.task]).to_yaml(),
        "facts": facts,
        "metric_name": summary.metric_name,
        "metric_noun": noun,
        "direction": "higher is better" if summary.greater_is_better else "lower is better",
        "has_scratch": any(g.is_baseline for g in summary.groups),
        "seeds": sorted({c.seed for c in cells}),
        "seeds_text": _seeds_text(seed_counts),
        "size_headers": [sizes.header(s) for s in summary.sizes],
        "results": _grid(summary, short, _results_cell(uniform)),
        "gains": _grid_gains(summary, short),
        "efficiency": efficiency,
        "saving": _best_saving(summary, efficiency, sizes, noun),
        "times": _grid(summary, short, lambda g: format_duration(g.train_runtime_mean)),
        "time": {
            "cells": summary.time.cells,
            "study": format_duration(summary.time.study_wall_time),
            "cells_wall": format_duration(summary.time.cells_wall_time),
            "train": format_duration(summary.time.train_runtime),
            "encoded": f"{summary.time.frozen_features_encoded:,}",
            "reused": f"{summary.time.frozen_features_reused:,}",
            "any_frozen": summary.time.frozen_features_encoded + summary.time.frozen_features_reused > 0,
        },
        "recommendations": _recommendation_view(summary, sizes, short, noun),
        "eval_examples": f"{facts.eval_examples:,}",
        "tie_share": f"{100 * TIE_SHARE:g} %",
        "ranking": _ranking_view(summary) if len(summary.ranking) >= 2 else [],
        "tau": f"{summary.kendall_tau:+.2f}" if summary.kendall_tau is not None else None,
        "tau_probe": (
            f"{summary.kendall_tau_linear_probe:+.2f}" if summary.kendall_tau_linear_probe is not None else None
        ),
        "largest_header": sizes.header(summary.largest_size),
        "layout": _layout(cells),
        "cells": _cells_view(cells, facts, short),
        "efficiency_figure": EFFICIENCY_FIGURE,
        "time_figure": TIME_FIGURE,
        "json_file": JSON_FILENAME,
        "csv_file": CSV_FILENAME,
    }


def _seeds_text(counts: set[int]) -> str:
    if len(counts) == 1:
        count = next(iter(counts))
        return f"{count} seed{'s' if count != 1 else ''}"
    return "the seeds that finished (n: how many)"


def _grid_gains(summary: StudySummary, short: dict[str, str]) -> list[list[str]]:
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    return _grid(summary, short, lambda g: format_gain(gains.get((g.model, g.label, g.size))), transfer_only=True)


def _best_saving(summary: StudySummary, efficiency: list[dict[str, str]], sizes: _Sizes, noun: str) -> str | None:
    """The headline's data-efficiency sentence: the largest label saving, or that no strategy saves labels."""
    pairs = list(zip(summary.data_efficiency, efficiency))
    saving = [
        (row, view) for row, view in pairs if row.label_saving_factor is not None and row.label_saving_factor > 1
    ]
    if saving:
        return max(saving, key=lambda pair: pair[0].label_saving_factor)[1]["sentence"]
    if pairs:
        return (
            f"No transfer strategy matches scratch's {noun} at {sizes.words(summary.largest_size)} with fewer labels."
        )
    return None


def _cells_view(cells: Sequence[CellResult], facts: StudyFacts, short: dict[str, str]) -> list[list[str]]:
    return [
        [
            _table_cell(f"`{short[c.model]}`"),
            "*from scratch*" if c.label == SCRATCH else _table_cell(f"`{c.label}`"),
            str(c.size),
            str(c.seed),
            format_metric(c.metric(facts.metric)),
            format_duration(c.train_runtime),
            _table_cell(f"`{c.run_dir}`"),
        ]
        for c in cells
    ]


def _environment():
    """The templates' Jinja environment, set up as the model cards' is: an unknown name fails the render."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_report(cells: Sequence[CellResult], summary: StudySummary, facts: StudyFacts) -> str:
    """README.md's text: the study template rendered and parsed once as a Hub card (its YAML header must load)."""
    from huggingface_hub import ModelCard

    text = _environment().get_template(TEMPLATE_NAME).render(**_context(cells, summary, facts))
    return str(ModelCard(text))


# --- the figures -----------------------------------------------------------------------------------------------------


def _axes(width: float, height: float):
    """One axis on an Agg canvas of its own: no pyplot, so no global backend switch inside a library."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save_figure(figure, path: Path) -> None:
    """No "Software" tag (it names the matplotlib version), so rerunning the report rewrites the same bytes."""
    figure.savefig(path, format="png", metadata={"Software": None})


def _colours(summary: StudySummary) -> dict[str, str]:
    """A colour per transfer strategy from the tab10 cycle without its grey; scratch keeps the dark grey."""
    names = ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan")
    palette = [f"tab:{name}" for name in names]
    labels = sorted({g.label for g in summary.groups if not g.is_baseline})
    colours = {label: palette[i % len(palette)] for i, label in enumerate(labels)}
    colours[SCRATCH] = SCRATCH_COLOUR
    return colours


def _series(summary: StudySummary) -> dict[tuple[str, str], list[GroupStats]]:
    """Each (model, strategy label)'s groups in size order, scratch after the strategies; no group without a mean."""
    series: dict[tuple[str, str], list[GroupStats]] = {}
    for group in summary.groups:
        if math.isfinite(group.metric_mean):
            series.setdefault((group.model, group.label), []).append(group)
    return series


def _size_ticks(axis, sizes: _Sizes) -> None:
    """Ticks at the studied sizes only (a log axis' decades say little here), ``all`` with its examples per class."""
    from matplotlib.ticker import FixedLocator, NullLocator

    positions = [sizes.per_class[s] for s in sizes.per_class]
    labels = [f"all\n({format_count(sizes.per_class[s])})" if s == ALL else str(s) for s in sizes.per_class]
    axis.xaxis.set_major_locator(FixedLocator(positions))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.set_xticklabels(labels)


def plot_data_efficiency(summary: StudySummary, facts: StudyFacts, path: Path) -> Path:
    """Metric vs labelled examples per class (log x), a line per (model, strategy), scratch dashed, std error bars.

    Series at the same size are nudged apart by a few percent on the log axis so their error bars stay readable.
    """
    figure, axis = _axes(10, 5.5)
    colours, markers = _colours(summary), _markers(summary)
    short = _short_names(g.model for g in summary.groups)
    series = _series(summary)
    for index, ((model, label), groups) in enumerate(series.items()):
        nudge = 1 + 0.03 * (index - (len(series) - 1) / 2)
        baseline = label == SCRATCH
        axis.errorbar(
            [g.examples_per_class * nudge for g in groups],
            [g.metric_mean for g in groups],
            yerr=[g.metric_std or 0.0 for g in groups],
            color=colours.get(label, SCRATCH_COLOUR),
            marker=markers[model],
            markerfacecolor="white" if baseline else None,
            linestyle="--" if baseline else "-",
            linewidth=1.8,
            markersize=6,
            capsize=3,
            label=f"{short[model]} · {'from scratch' if baseline else label}",
        )
    axis.set_xscale("log")
    _size_ticks(axis, _Sizes(summary))
    per_class = "labelled examples per class" if facts.n_classes else "labelled training examples"
    axis.set_xlabel(f"{per_class} (log scale; 'all' = the whole training pool)")
    axis.set_ylabel(f"{summary.metric_name} ({'higher' if summary.greater_is_better else 'lower'} is better)")
    axis.set_title(f"{summary.metric_name} on {facts.eval_examples:,} evaluation examples, mean ± std over seeds")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="checkpoint · strategy")
    _save_figure(figure, path)
    return path


def _markers(summary: StudySummary) -> dict[str, str]:
    models = sorted({g.model for g in summary.groups})
    return {model: MARKERS[i % len(MARKERS)] for i, model in enumerate(models)}


def plot_metric_vs_time(summary: StudySummary, path: Path) -> Path:
    """Metric vs mean train time per cell (log x): a point per (model, strategy, size), coloured by strategy,
    a marker per model, the size written beside it; scratch in grey with hollow markers and a dashed path."""
    from matplotlib.lines import Line2D

    figure, axis = _axes(10, 5.5)
    colours, markers = _colours(summary), _markers(summary)
    short = _short_names(g.model for g in summary.groups)
    for (model, label), groups in _series(summary).items():
        baseline = label == SCRATCH
        colour = colours.get(label, SCRATCH_COLOUR)
        times = [max(g.train_runtime_mean, 1e-2) for g in groups]  # a log axis has no zero
        means = [g.metric_mean for g in groups]
        axis.plot(times, means, color=colour, linestyle="--" if baseline else "-", linewidth=1, alpha=0.4)
        axis.errorbar(
            times,
            means,
            yerr=[g.metric_std or 0.0 for g in groups],
            color=colour,
            marker=markers[model],
            markerfacecolor="white" if baseline else colour,
            linestyle="none",
            markersize=7,
            capsize=2,
        )
        for x, y, group in zip(times, means, groups):
            axis.annotate(str(group.size), (x, y), xytext=(5, 4), textcoords="offset points", fontsize="small")
    axis.set_xscale("log")
    _time_ticks(axis)
    axis.set_xlabel("mean training time per cell (log scale)")
    axis.set_ylabel(f"{summary.metric_name} ({'higher' if summary.greater_is_better else 'lower'} is better)")
    axis.set_title(f"{summary.metric_name} vs training time (numbers: labelled examples per class)")
    axis.grid(alpha=0.3, which="both")
    handles = [
        Line2D(
            [],
            [],
            color=colour,
            marker="o",
            markerfacecolor="white" if label == SCRATCH else colour,
            linestyle="--" if label == SCRATCH else "-",
            label=_legend(label),
        )
        for label, colour in colours.items()
        if any(g.label == label for g in summary.groups)
    ]
    if len(markers) > 1:
        handles += [
            Line2D([], [], color="black", marker=marker, linestyle="none", label=short[model])
            for model, marker in markers.items()
        ]
    axis.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    _save_figure(figure, path)
    return path


def _legend(label: str) -> str:
    return "from scratch" if label == SCRATCH else label


TIME_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 18000, 36000, 86400)


def _time_tick_label(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min" if seconds < 3600 else f"{seconds / 3600:g} h"


def _spaced(ticks: list[float], most: int = 8) -> list[float]:
    """Ticks at least about 2x apart (20 s and 30 s side by side run their labels together), and at most ``most``."""
    ratio = 1.9
    while True:
        kept: list[float] = []
        for tick in ticks:
            if not kept or tick / kept[-1] >= ratio:
                kept.append(tick)
        if len(kept) <= most:
            return kept
        ratio *= 1.5


def _time_ticks(axis) -> None:
    """Ticks at round durations written as "30 s", "2 min" (a bare 10^2 makes readers convert); kept as matplotlib
    set them when fewer than two round durations fall inside the axis."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    low, high = axis.get_xlim()
    ticks = _spaced([t for t in TIME_TICKS if low <= t <= high])
    if len(ticks) < 2:
        return
    axis.xaxis.set_major_locator(FixedLocator(ticks))
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xticklabels([_time_tick_label(t) for t in ticks])


# --- the terminal ----------------------------------------------------------------------------------------------------


def _terminal_text(summary: StudySummary) -> str:
    """A plain-text table (no markdown: it goes to a terminal) with a line or two below it."""
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    direction = "higher" if summary.greater_is_better else "lower"
    rows = [["labels/class", "checkpoint", "strategy", summary.metric_name, "train time", "vs scratch", "model"]]
    for r in summary.recommendations:
        gain = gains.get((r.model, r.strategy, r.size))
        time = format_duration(r.train_runtime_mean)
        mean = _mean_std(r.metric_mean, r.metric_std)
        rows.append([str(r.size), r.model, r.strategy, mean, time, format_gain(gain), r.run_dir])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"Recommended configuration at each size ({summary.metric_name}, {direction} is better):"]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    saving = [r for r in summary.data_efficiency if r.label_saving_factor is not None and r.label_saving_factor > 1]
    if saving:
        best = max(saving, key=lambda r: r.label_saving_factor)
        lines.append(
            f"{best.strategy} on {best.model} matches scratch at {best.reference_size} with {best.matching_size} "
            f"labels per class: {format_factor(best.label_saving_factor)} fewer labels."
        )
    if summary.failed_cells:
        lines.append(f"{len(summary.failed_cells)} cell(s) failed and are left out of the report:")
        lines += [f"  {line}" for line in summary.failed_cells]
    return "\n".join(lines)
