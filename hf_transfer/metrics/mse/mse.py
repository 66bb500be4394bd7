"""Mean squared error as an `evaluate` metric module that loads from disk."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Mean of the squared differences between predictions and references."
_KWARGS_DESCRIPTION = "predictions, references: floats. Returns {'mse': float}."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mse(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            ),
        )

    def _compute(self, predictions, references):
        diff = np.asarray(predictions, dtype=np.float64) - np.asarray(references, dtype=np.float64)
        return {"mse": float(np.mean(diff**2))}
