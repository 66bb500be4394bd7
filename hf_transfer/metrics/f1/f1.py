"""F1 as an `evaluate` metric module that loads from disk; ``average='macro'`` weighs every class equally."""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "Harmonic mean of precision and recall, averaged over classes as `average` says."
_KWARGS_DESCRIPTION = "predictions, references: class ids; average: 'macro' | 'micro' | 'weighted' | 'binary'."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            # config "multilabel": one 0/1 indicator vector per example (sklearn's multilabel-indicator format)
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
                if self.config_name == "multilabel"
                else {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="macro", labels=None):
        score = f1_score(references, predictions, average=average, labels=labels, zero_division=0)
        return {"f1": float(score)}
