"""The study's two figures: the metric against labelled examples per class (data efficiency) and against training
time. matplotlib's object API on an Agg canvas, PNGs written without the "Software" tag: the same study always gives
byte-identical files."""

from __future__ import annotations

import math
from pathlib import Path

from .summary import ALL, SCRATCH, GroupStats, SizeAxis, StudyFacts, StudySummary, format_count, short_names

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SCRATCH_COLOUR = "dimgray"


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


def _size_ticks(axis, sizes: SizeAxis) -> None:
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
    short = short_names(g.model for g in summary.groups)
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
    positive = [g.examples_per_class for g in summary.groups if g.examples_per_class > 0]
    scale = "log scale"
    if len(positive) < len(summary.groups) and positive:  # zero-shot cells sit at 0: linear up to the first size
        axis.set_xscale("symlog", linthresh=min(positive))
        scale = f"log scale from {format_count(min(positive))}; 0 = zero-shot"
    else:
        axis.set_xscale("log")
    _size_ticks(axis, SizeAxis(summary))
    per_class = "labelled examples per class" if facts.n_classes else "labelled training examples"
    axis.set_xlabel(f"{per_class} ({scale}; 'all' = the whole training pool)")
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
    short = short_names(g.model for g in summary.groups)
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
