"""Classification metrics through `evaluate`, from metric modules shipped inside the package (no Hub access)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from transformers import EvalPrediction

METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"


def load_metric(name: str):
    """``evaluate.load`` on a local module: the Hub-hosted 'accuracy' etc. cannot be fetched offline."""
    import evaluate

    path = METRICS_DIR / name
    if not path.is_dir():
        raise ValueError(f"No bundled metric {name!r}; available: {sorted(p.name for p in METRICS_DIR.iterdir())}.")
    return evaluate.load(str(path))


def classification_metrics(num_labels: int) -> Callable[[EvalPrediction], dict[str, float]]:
    """accuracy and macro-F1 always; top-5 accuracy when there are at least 10 classes."""
    accuracy, f1 = load_metric("accuracy"), load_metric("f1")
    top_k = load_metric("top_k_accuracy") if num_labels >= 10 else None

    def compute(eval_pred: EvalPrediction) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        logits = np.asarray(logits)
        references = np.asarray(eval_pred.label_ids)
        predictions = logits.argmax(axis=-1)
        metrics = accuracy.compute(predictions=predictions, references=references)
        metrics["macro_f1"] = f1.compute(predictions=predictions, references=references, average="macro")["f1"]
        if top_k is not None:
            metrics.update(top_k.compute(predictions=logits, references=references, k=5))
        return metrics

    return compute
