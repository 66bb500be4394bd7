"""The names of the metrics hf_transfer reports, and how each is shown: one table for the model card's model-index,
its tables and the training-curve figure. A leaf (nothing of hf_transfer imported), so ``hub`` and ``training`` both
read it without depending on each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricInfo:
    """How a reported metric is shown: model-index wants an `evaluate` id (and its arguments), readers a name."""

    type: str  # the `evaluate` metric id
    name: str
    args: dict[str, Any] | None = None


# Every metric the compute functions below report (by the name they report it under, without ``eval_``).
METRIC_INFO = {
    "accuracy": MetricInfo("accuracy", "Accuracy"),
    "macro_f1": MetricInfo("f1", "Macro F1", {"average": "macro"}),
    "micro_f1": MetricInfo("f1", "Micro F1", {"average": "micro"}),
    "subset_accuracy": MetricInfo("accuracy", "Subset accuracy (exact match)"),
    "top5_accuracy": MetricInfo("top_k_accuracy", "Top-5 accuracy", {"k": 5}),
    "mse": MetricInfo("mse", "MSE"),
    "pearsonr": MetricInfo("pearsonr", "Pearson r"),
}
# What the Trainer reports beside the metrics (``eval_runtime``, ``eval_loss``...; without ``eval_``): bookkeeping, or
# the loss, which is shown on its own, never as a quality metric.
NOT_METRICS = frozenset({"epoch", "runtime", "samples", "samples_per_second", "steps_per_second", "loss"})


def metric_info(name: str) -> MetricInfo:
    """The card's naming of a reported metric; one this table does not know (a plugin's) is named as reported."""
    return METRIC_INFO.get(name) or MetricInfo(name, name)


def eval_metric_name(key: str) -> str | None:
    """The validation metric a Trainer key reports (``eval_macro_f1`` → ``macro_f1``); None for anything else."""
    name = key.removeprefix("eval_")
    return name if key.startswith("eval_") and name not in NOT_METRICS else None
