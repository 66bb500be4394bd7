"""The model card's study section: how this configuration was chosen, when the run is a cell of a transfer study
(``hf-transfer study``), read from the study's own ``study.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .card_sections import read_optional_json


@dataclass(frozen=True)
class StudyChoice:
    """How this configuration was chosen: the transfer study whose cell this run is (``hf-transfer study``)."""

    metric_name: str
    sizes: list[str]  # column headings ("8/class", ..., "all")
    rows: list[tuple[str, list[str]]]  # (strategy, "mean ± std" per size) for this run's checkpoint
    this_cell: str  # "linear_probe, 8 labelled examples per class, seed 0"
    recommended: list[str]  # one sentence per size
    eval_set: str

    @classmethod
    def of_cell(cls, run_dir: Path) -> StudyChoice | None:
        cell = read_optional_json(run_dir / "study_cell.json")
        study = read_optional_json(run_dir / str(cell.get("study_dir", "")) / "study.json") if cell else {}
        summary = study.get("summary") or {}
        if not summary.get("groups"):
            return None
        sizes = list(summary.get("sizes") or [])
        groups = [g for g in summary["groups"] if g.get("model") == cell.get("model")]
        labels = list(dict.fromkeys(g["label"] for g in groups))

        def value(label: str, size: Any) -> str:
            group = next((g for g in groups if g["label"] == label and g["size"] == size), None)
            if group is None or group.get("metric_mean") is None:
                return "—"
            std = group.get("metric_std")
            return f"{group['metric_mean']:.3f}" + (f" ± {std:.3f}" if std is not None else "")

        size_text = "all" if cell.get("train_size") is None else f"{cell['train_size']} labelled examples per class"
        label = "scratch" if cell.get("from_scratch") else cell.get("strategy")
        recommended = [
            f"{'all' if r['size'] == 'all' else str(r['size']) + '/class'}: `{r['strategy']}`"
            f"{' from scratch' if r.get('from_scratch') else ''} ({r['metric_mean']:.3f})"
            for r in summary.get("recommendations") or []
        ]
        return cls(
            metric_name=str(summary.get("metric_name") or summary.get("metric") or "metric"),
            sizes=[s if s == "all" else f"{s}/class" for s in sizes],
            rows=[(label_, [value(label_, size) for size in sizes]) for label_ in labels],
            this_cell=f"`{label}`, {size_text}, seed {cell.get('seed')}",
            recommended=recommended,
            eval_set=str((study.get("facts") or {}).get("eval_set") or "one fixed held-out set"),
        )
