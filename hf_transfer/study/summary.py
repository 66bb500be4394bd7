"""The numbers of a transfer study, as a pure function of its finished cells: per group (model × strategy × size)
mean and std over seeds, the gain over scratch, data efficiency, recommendations, the checkpoint ranking's agreement
with fine-tuning, and time.

A *cell* is one training run (checkpoint × strategy × labelled examples per class × seed, plus the same architecture
trained from scratch). Conventions: a group is the seeds of one (model, strategy label, size); "size" is the labelled
examples per class, or ``"all"`` (the whole training pool, placed after the numeric sizes). "Better" always follows
the selection metric's direction, so a gain is positive when transfer beats scratch, also for a lower-is-better
metric such as ``mse``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..metric_names import metric_info
from .transferability import RankingScore, kendall_tau

Size = int | str  # labelled examples per class, or ALL

ALL = "all"
SCRATCH = "scratch"  # the label of the baseline: strategy `full` from a random initialisation
SCRATCH_STRATEGY = "full"
UNLABELED_SUFFIX = "+unlabelled"  # the label of cells self-trained on the study's unlabelled examples
TIE_SHARE = 0.005  # configurations closer than this share of the study's metric range count as tied


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
    cells_run: int | None = None  # cells this invocation ran (a resumed study skips the finished ones)

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
    cells_run: int | None = None  # of ``cells``, run by the invocation whose wall time is ``study_wall_time``


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
        return json_safe(asdict(self))

    def headline(self) -> str:
        """What the CLI prints when the study ends: the configuration to use at each size, the best label saving and
        any failed cells; the full report is README.md."""
        return _terminal_text(self)


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


# --- the summary -----------------------------------------------------------------------------------------------------


def size_order(size: Size) -> tuple[int, int]:
    """Numeric sizes ascending, then ``all``: the whole pool is at least as large as any numeric size."""
    return (1, 0) if size == ALL else (0, int(size))


def _goodness(value: float, greater_is_better: bool) -> float:
    """The metric turned so that larger is always better (the only place the direction is looked at)."""
    return value if greater_is_better else -value


def examples_per_class(cell: CellResult, n_classes: int | None) -> float:
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
        examples_per_class=statistics.fmean(examples_per_class(c, facts.n_classes) for c in cells),
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
        cells_run=facts.cells_run,
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


# --- how numbers and names are written (the report, the figures and the terminal text share these) -------------------


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


def mean_std(mean: float, std: float | None, n: int | None = None) -> str:
    text = format_metric(mean)
    if std is not None and math.isfinite(mean):
        text += f" ± {format_metric(std)}"
    return text + (f" (n={n})" if n is not None else "")


def metric_noun(name: str) -> str:
    """A display name inside a sentence: "Accuracy" → "accuracy", "Macro F1" → "macro F1", "MSE" stays."""
    if name[1:2].islower() and not name.startswith("Pearson"):
        return name[0].lower() + name[1:]
    return name


def short_model(model: str) -> str:
    return model.removeprefix("builtin:").split("/")[-1]


def short_names(models: Iterable[str]) -> dict[str, str]:
    """Figure labels without org or ``builtin:`` prefixes, unless two checkpoints would then look the same."""
    models = sorted(set(models))
    short = {m: short_model(m) for m in models}
    return short if len(set(short.values())) == len(models) else {m: m for m in models}


# --- sizes in words, and the terminal text ---------------------------------------------------------------------------


class SizeAxis:
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


def _terminal_text(summary: StudySummary) -> str:
    """A plain-text table (no markdown: it goes to a terminal) with a line or two below it."""
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    direction = "higher" if summary.greater_is_better else "lower"
    rows = [["labels/class", "checkpoint", "strategy", summary.metric_name, "train time", "vs scratch", "model"]]
    for r in summary.recommendations:
        gain = gains.get((r.model, r.strategy, r.size))
        time = format_duration(r.train_runtime_mean)
        mean = mean_std(r.metric_mean, r.metric_std)
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
