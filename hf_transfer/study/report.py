"""The study's report files, as a pure function of the finished cells: ``study.json`` (every cell and the summary),
``study.csv`` (a row per cell), the two figures and a README.md that renders on the Hub.

The runner collects one :class:`~hf_transfer.study.summary.CellResult` per cell; nothing here trains, loads a model or
reads a run directory, so the same records always give the same files (the figures byte for byte) and the report can
be tested with hand-written numbers. The numbers are :mod:`hf_transfer.study.summary`'s, the figures
:mod:`hf_transfer.study.plots`'.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .plots import plot_data_efficiency, plot_metric_vs_time
from .summary import (
    SCRATCH,
    TIE_SHARE,
    UNLABELED_SUFFIX,
    CellResult,
    GroupStats,
    SizeAxis,
    StudyFacts,
    StudySummary,
    examples_per_class,
    format_duration,
    format_factor,
    format_gain,
    format_metric,
    json_safe,
    mean_std,
    metric_noun,
    short_names,
    size_order,
    summarize,
)
from .transferability import RankingScore

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
    record.update(size=cell.size, label=cell.label, examples_per_class=examples_per_class(cell, facts.n_classes))
    return record


def _write_json(path: Path, cells: Sequence[CellResult], summary: StudySummary, facts: StudyFacts) -> None:
    document = {
        "facts": asdict(facts),
        "cells": [_cell_record(c, facts) for c in cells],
        "summary": summary.to_dict(),
    }
    path.write_text(json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n", encoding="utf-8")


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
            writer.writerow([*fixed, cell.size, examples_per_class(cell, facts.n_classes), *metrics])


# --- human-readable numbers ------------------------------------------------------------------------------------------


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
    return lambda g: mean_std(g.metric_mean, g.metric_std, None if uniform_seeds else g.n_seeds)


def _efficiency_view(summary: StudySummary, sizes: SizeAxis, short: dict[str, str], noun: str) -> list[dict[str, str]]:
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
    summary: StudySummary, sizes: SizeAxis, short: dict[str, str], noun: str
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
            "metric": mean_std(r.metric_mean, r.metric_std),
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

    short = short_names(g.model for g in summary.groups)
    sizes = SizeAxis(summary, per_class=bool(facts.n_classes))
    noun = metric_noun(summary.metric_name)
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
        "unlabeled_gains": _grid_unlabeled(summary, short),
        "efficiency": efficiency,
        "saving": _best_saving(summary, efficiency, sizes, noun),
        "times": _grid(summary, short, lambda g: format_duration(g.train_runtime_mean)),
        "time": {
            "cells": summary.time.cells,
            "resumed": summary.time.cells_run is not None and summary.time.cells_run < summary.time.cells,
            "cells_run": summary.time.cells_run,
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


def _grid_unlabeled(summary: StudySummary, short: dict[str, str]) -> list[list[str]]:
    """Per self-trained row and size: what the unlabelled examples buy (with − without, the same labels), and in
    brackets what transfer buys over scratch there, so the two gains read side by side."""
    gains = {(g.model, g.strategy, g.size): g.gain for g in summary.gains}
    sign = 1 if summary.greater_is_better else -1

    def text(group: GroupStats) -> str:
        without = summary.group(group.model, group.label.removesuffix(UNLABELED_SUFFIX), group.size)
        if without is None:
            return "—"
        bought = format_gain(sign * (group.metric_mean - without.metric_mean))
        transfer = gains.get((group.model, without.label, group.size))
        return f"{bought} (transfer: {format_gain(transfer)})" if transfer is not None else bought

    rows = _grid(summary, short, text, transfer_only=True)
    return [row for row in rows if row[1].endswith(f"{UNLABELED_SUFFIX}`")]


def _best_saving(summary: StudySummary, efficiency: list[dict[str, str]], sizes: SizeAxis, noun: str) -> str | None:
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
