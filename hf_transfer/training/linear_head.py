"""A linear head fitted in one full-batch solve on frozen features, instead of a Trainer loop of SGD steps.

On cached features a probe's optimum is one convex problem: multinomial logistic regression with an L2 penalty,
solved by L-BFGS (scikit-learn's ``LogisticRegression``, as SetFit's default head and MTEB's classification protocol
use). Its one knob, the regularisation strength ``C``, is chosen by stratified cross-validation on the training
features when the user gives none, so no example is spent on a hold-out. The result is plain ``(weight, bias)`` for
the model's own classifier: the saved model is unchanged in format.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

C_GRID = tuple(float(c) for c in np.logspace(-3, 2, 11))  # inverse L2 strengths cross-validation chooses from
MAX_FOLDS = 5
MAX_ITER = 500


@dataclass(frozen=True)
class LinearHead:
    """A fitted head: ``logits = features @ weight.T + bias``, one row per class (every class, seen or not)."""

    weight: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)
    c: float  # the inverse L2 strength it was fitted with
    chosen_by: str  # how ``c`` was chosen, in words for the log and the card
    cv_accuracy: float | None = None  # mean held-out-fold accuracy at ``c`` (None when ``c`` was given)

    def describe(self) -> str:
        how = "as given (--head_c)" if self.chosen_by == "given" else self.chosen_by
        score = f" (cross-validated accuracy {self.cv_accuracy:.3f})" if self.cv_accuracy is not None else ""
        return f"L2-regularised logistic regression with C={self.c:g} {how}{score}"


def fit_linear_head(
    features: np.ndarray, labels: np.ndarray, num_classes: int, c: float | None = None, seed: int = 0
) -> LinearHead:
    """Fit a multinomial logistic-regression head on ``features`` (n × d) for class ids ``labels`` (n,)."""
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise ValueError("A closed-form head needs examples of at least two classes.")
    model, how, score = _fit(features, labels, c, seed)
    weight = np.zeros((num_classes, features.shape[1]))
    bias = np.full(num_classes, -1e4)  # a class with no training example is never predicted
    coef, intercept = model.coef_, model.intercept_
    if len(present) == 2:  # scikit-learn fits one logit difference z: softmax([-z/2, z/2]) = sigmoid(z)
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    weight[model.classes_] = coef
    bias[model.classes_] = intercept
    return LinearHead(
        weight.astype(np.float32),
        bias.astype(np.float32),
        float(np.ravel(model.C_ if hasattr(model, "C_") else model.C)[0]),
        how,
        score,
    )


def smallest_class(labels: np.ndarray) -> int:
    """Examples of the least frequent class present in ``labels`` (class ids)."""
    labels = np.asarray(labels, dtype=np.int64)
    return int(np.bincount(labels)[np.unique(labels)].min())


def _fit(features: np.ndarray, labels: np.ndarray, c: float | None, seed: int):
    """The fitted scikit-learn model, how its ``C`` was chosen, and the cross-validated accuracy at that ``C``.

    Cross-validation follows the regularisation path with warm starts (``LogisticRegressionCV``), so the whole grid
    costs a few fits; the best mean fold accuracy wins, ties going to the stronger penalty (the grid ascends)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FutureWarnings of renamed options; convergence at a tiny tolerance
        if c is not None:
            return LogisticRegression(C=c, max_iter=MAX_ITER).fit(features, labels), "given", None
        folds = min(MAX_FOLDS, smallest_class(labels))
        if folds < 2:
            model = LogisticRegression(C=1.0, max_iter=MAX_ITER).fit(features, labels)
            return model, "(the default: a class has one example, too few to cross-validate)", None
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        model = LogisticRegressionCV(Cs=list(C_GRID), cv=splitter, scoring="accuracy", max_iter=MAX_ITER)
        model.fit(features, labels)
    best = int(np.flatnonzero(np.isclose(C_GRID, float(np.ravel(model.C_)[0])))[0])
    score = float(np.mean(next(iter(model.scores_.values()))[:, best]))
    return model, f"chosen by {folds}-fold cross-validation on the training features", score
