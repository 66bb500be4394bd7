"""The model card's figures: training curves from the Trainer's log history, and the validation confusion matrix.

Drawn with matplotlib's object API on an Agg canvas (no pyplot: no global backend switch inside a library), and
written without the "Software" PNG tag, so the same run always gives byte-identical files: re-pushing an unchanged
run then uploads nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..metric_names import eval_metric_name

MAX_ANNOTATED_CLASSES = 20
MAX_LABELLED_CLASSES = 40


def _figure(width: float, height: float, columns: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def _save(figure, path: Path) -> Path:
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def plot_training_curves(log_history: Sequence[dict[str, Any]], path: Path, best_step: int | None = None) -> bool:
    """Training and validation loss by step, and the validation metrics beside them. False if nothing was logged."""
    train = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    evals = [e for e in log_history if "eval_loss" in e and "step" in e]
    if not train and not evals:
        return False
    metric_names = sorted({key for e in evals for key in e if eval_metric_name(key)})
    figure, axes = _figure(10 if metric_names else 6, 4, 2 if metric_names else 1)
    loss_axis = axes[0]
    if train:
        loss_axis.plot(*zip(*train), label="training loss", color="tab:blue")
    if evals:
        steps, losses = [e["step"] for e in evals], [e["eval_loss"] for e in evals]
        loss_axis.plot(steps, losses, "o-", label="validation loss", color="tab:orange")
    loss_axis.set(xlabel="step", ylabel="loss", title="Loss")
    for name in metric_names:
        points = [(e["step"], e[name]) for e in evals if isinstance(e.get(name), (int, float))]
        axes[1].plot(*zip(*points), "o-", label=name.removeprefix("eval_"))
    if metric_names:
        axes[1].set(xlabel="step", ylabel="value", title="Validation metrics")
    for axis in axes:
        if best_step is not None:
            axis.axvline(best_step, color="grey", linestyle="--", linewidth=1, label="kept checkpoint")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    _save(figure, path)
    return True


def plot_confusion_matrix(
    references: Sequence[int], predictions: Sequence[int], label_names: Sequence[str], path: Path
) -> bool:
    """Counts of (true, predicted) class pairs on the validation split, coloured by row share. False if empty."""
    import numpy as np

    n = len(label_names)
    if not references or n == 0:
        return False
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (np.asarray(references), np.asarray(predictions)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(4 + 0.35 * n, 16)
    figure, (axis,) = _figure(side + 1, side)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="share of the true class")
    if n <= MAX_LABELLED_CLASSES:
        axis.set_xticks(range(n), labels=list(label_names), rotation=45, ha="right")
        axis.set_yticks(range(n), labels=list(label_names))
    if n <= MAX_ANNOTATED_CLASSES:
        for (row, column), count in np.ndenumerate(counts):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, str(count), ha="center", va="center", color=colour, fontsize="small")
    accuracy = np.trace(counts) / counts.sum()
    axis.set(xlabel="predicted", ylabel="true", title=f"Validation confusion matrix (accuracy {accuracy:.3f})")
    _save(figure, path)
    return True
