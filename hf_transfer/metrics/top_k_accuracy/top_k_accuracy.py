"""Top-k accuracy from class scores, as an `evaluate` metric module that loads from disk."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Fraction of examples whose true class is among the k highest-scoring classes."
_KWARGS_DESCRIPTION = "predictions: per-class scores (one list per example); references: class ids; k: int."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, k=5):
        scores = np.asarray(predictions)
        top_k = np.argsort(-scores, axis=1)[:, :k]
        hits = (top_k == np.asarray(references)[:, None]).any(axis=1)
        return {f"top{k}_accuracy": float(hits.mean())}
