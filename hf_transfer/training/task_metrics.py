"""Metrics through `evaluate`, from metric modules shipped inside the package (no Hub access needed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from transformers import EvalPrediction

from ..config import MULTI_LABEL, REGRESSION

METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"
MetricFn = Callable[[EvalPrediction], dict[str, float]]


def load_metric(name: str, config_name: str | None = None):
    """``evaluate.load`` on a local module: the Hub-hosted 'accuracy' etc. cannot be fetched offline."""
    import evaluate

    path = METRICS_DIR / name
    if not path.is_dir():
        raise ValueError(f"No bundled metric {name!r}; available: {sorted(p.name for p in METRICS_DIR.iterdir())}.")
    return evaluate.load(str(path), config_name) if config_name else evaluate.load(str(path))


def _loaded(*metrics: tuple[str, ...]) -> Callable[[], tuple]:
    """The metric modules, loaded at the first evaluation: a run that evaluates nothing (few labels, no hold-out)
    never pays for importing ``evaluate`` (and scipy with it, ~1.3 s of a 20 s few-label run)."""
    return cache(lambda: tuple(load_metric(*metric) for metric in metrics))


def _logits(eval_pred: EvalPrediction) -> np.ndarray:
    predictions = eval_pred.predictions
    return np.asarray(predictions[0] if isinstance(predictions, tuple) else predictions)


def classification_metrics(num_labels: int) -> MetricFn:
    """accuracy and macro-F1 always; top-5 accuracy when there are at least 10 classes."""
    modules = _loaded(("accuracy",), ("f1",), *([("top_k_accuracy",)] if num_labels >= 10 else []))

    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        accuracy, f1, *top = modules()
        top_k = top[0] if top else None
        logits = _logits(eval_pred)
        references = np.asarray(eval_pred.label_ids)
        predictions = logits.argmax(axis=-1)
        metrics = accuracy.compute(predictions=predictions, references=references)
        metrics["macro_f1"] = f1.compute(predictions=predictions, references=references, average="macro")["f1"]
        if top_k is not None:
            metrics.update(top_k.compute(predictions=logits, references=references, k=5))
        return metrics

    return compute


def multilabel_metrics(threshold: float = 0.5) -> MetricFn:
    """micro- and macro-F1 of sigmoid(logits) > threshold, plus exact-match (subset) accuracy."""
    modules = _loaded(("f1", "multilabel"))

    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        (f1,) = modules()
        probabilities = 1.0 / (1.0 + np.exp(-_logits(eval_pred)))
        predictions = (probabilities > threshold).astype(np.int64)
        references = np.asarray(eval_pred.label_ids).round().astype(np.int64)
        return {
            "micro_f1": f1.compute(predictions=predictions, references=references, average="micro")["f1"],
            "macro_f1": f1.compute(predictions=predictions, references=references, average="macro")["f1"],
            "subset_accuracy": float((predictions == references).all(axis=1).mean()),
        }

    return compute


def regression_metrics() -> MetricFn:
    modules = _loaded(("mse",), ("pearsonr",))

    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        mse, pearson = modules()
        predictions = _logits(eval_pred).reshape(-1)
        references = np.asarray(eval_pred.label_ids).reshape(-1)
        return {
            **mse.compute(predictions=predictions, references=references),
            **pearson.compute(predictions=predictions, references=references),
        }

    return compute


@dataclass(frozen=True)
class TaskMetrics:
    compute: MetricFn
    names: tuple[str, ...]  # what ``compute`` reports (without the ``eval_`` prefix)
    best: str  # the default metric for choosing the best checkpoint
    greater_is_better: bool


def metrics_for(problem_type: str, num_labels: int) -> TaskMetrics:
    if problem_type == MULTI_LABEL:
        return TaskMetrics(multilabel_metrics(), ("micro_f1", "macro_f1", "subset_accuracy"), "micro_f1", True)
    if problem_type == REGRESSION:
        return TaskMetrics(regression_metrics(), ("mse", "pearsonr"), "mse", False)
    names = ("accuracy", "macro_f1") + (("top5_accuracy",) if num_labels >= 10 else ())
    return TaskMetrics(classification_metrics(num_labels), names, "accuracy", True)
