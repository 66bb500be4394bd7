"""Cheap checkpoint-ranking scores computed from frozen features, so a study can pick checkpoints without fine-tuning.

Two complementary scores: LogME (a Bayesian evidence of a linear head, no hyper-parameters) and a closed-form ridge
linear probe (a leave-one-out accuracy, the quantity users actually care about). ``kendall_tau`` measures how well a
score's ranking agrees with the ranking that fine-tuning produces. Only numpy/scipy/sklearn are imported (nothing else
from ``hf_transfer``, no torch), so scoring cached features never loads a model stack.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import RidgeClassifierCV
from sklearn.preprocessing import StandardScaler

__all__ = ["RankingScore", "best_first", "kendall_tau", "linear_probe_score", "logme", "score_features"]

DEFAULT_ALPHAS: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def _targets(labels: np.ndarray, num_examples: int) -> np.ndarray:
    """Labels as an ``(n, C)`` float64 target matrix: one-hot for 1-D class ids, as-is for 2-D arrays."""
    labels = np.asarray(labels)
    if labels.shape[0] != num_examples:
        raise ValueError(f"labels have {labels.shape[0]} rows but features have {num_examples}")
    if labels.ndim == 2:
        return labels.astype(np.float64)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D class ids or a 2-D target matrix, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and not np.array_equal(labels, np.round(labels)):
        raise ValueError("1-D labels must be integer class ids; pass regression targets as a 2-D (n, k) array")
    classes = np.unique(labels)  # only classes that occur: an absent class has an all-zero target and no evidence
    return (labels[:, None] == classes[None, :]).astype(np.float64)


def _spectrum(features: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Nonzero squared singular values of F and a map ``Y -> U^T Y`` (U: the matching left singular vectors).

    For n > d the d x d Gram matrix is eigen-decomposed (cost n d^2, and U is never formed), as thuml/LogME does;
    otherwise the thin SVD of F is cheaper. Directions with (numerically) zero singular value are dropped: they leave
    the fit unchanged and contribute only alpha / alpha = 1 to det A / alpha^d (see ``logme``).
    """
    n, d = features.shape
    if n > d:
        sigma2, v = np.linalg.eigh(features.T @ features)
        keep = sigma2 > sigma2.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
        sigma2, v = sigma2[keep], v[:, keep]
        sigma = np.sqrt(sigma2)
        return sigma2, lambda y: (v.T @ (features.T @ y)) / sigma[:, None]  # U = F V / sigma
    u, sigma, _ = np.linalg.svd(features, full_matrices=False)
    keep = sigma > sigma.max(initial=0.0) * max(n, d) * np.finfo(np.float64).eps
    u, sigma = u[:, keep], sigma[keep]
    return sigma**2, lambda y: u.T @ y


def logme(features: np.ndarray, labels: np.ndarray, *, tol: float = 1e-10, max_iter: int = 1000) -> float:
    """LogME: the maximised, per-example log evidence of a Bayesian linear head on frozen features (higher is better).

    You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021
    (reference implementation: https://github.com/thuml/LogME). Each target column y is modelled as
    ``y = F w + eps`` with ``w ~ N(0, 1/alpha I)`` and ``eps ~ N(0, 1/beta I)``; the log evidence ``log p(y | F)`` is
    maximised over (alpha, beta) by the paper's fixed-point iteration (Algorithm 1), divided by n, and averaged over
    columns. Why evidence rather than a fitted head: it integrates over w, so it needs no regularisation choice and
    cannot be gamed by over-fitting a high-dimensional feature space.

    One SVD of F makes each iteration O(rank): with ``t = alpha / beta``, ``x = U^T y`` and squared singular values
    ``s``, ``gamma = sum s/(s+t)``, ``m^T m = sum s x^2/(s+t)^2`` and ``|y - F m|^2 = sum t^2 x^2/(s+t)^2`` plus the
    part of ``|y|^2`` outside the column space of F. Unlike the reference's fixed-point code, the alpha term uses the
    rank of F, not d, so the value is the exact evidence also when n < d or F is rank-deficient, and the loop runs to
    a tight tolerance rather than 11 steps.

    Args:
        features: ``(n, d)`` frozen features; used as-is (no centring), in float64.
        labels: 1-D integer class ids (each class present becomes a one-hot target column), or a 2-D ``(n, k)``
            float array whose columns are separate targets (regression outputs or multi-hot labels).
    Returns:
        The mean over target columns of the maximum log evidence divided by n.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {f.shape}")
    n, d = f.shape
    y = _targets(labels, n)
    s, project = _spectrum(f)
    k = s.size
    s = s[:, None]  # (k, 1) against the (k, C) projections: all target columns iterate together
    x2 = project(y) ** 2
    outside = np.maximum((y**2).sum(axis=0) - x2.sum(axis=0), 0.0)  # residual no alpha/beta can remove
    # Floors keep alpha and beta finite in degenerate cases (an all-zero target; an exactly fittable one, n <= rank).
    floor = 1e-12 * np.maximum((y**2).sum(axis=0), np.finfo(np.float64).tiny)

    def moments(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gamma = (s / (s + t)).sum(axis=0)
        m2 = np.maximum((s * x2 / (s + t) ** 2).sum(axis=0), floor)
        res2 = np.maximum((t**2 * x2 / (s + t) ** 2).sum(axis=0) + outside, floor)
        return gamma, m2, res2

    alpha, beta = np.ones(y.shape[1]), np.ones(y.shape[1])
    for _ in range(max_iter):
        t = alpha / beta
        gamma, m2, res2 = moments(t)
        alpha, beta = gamma / m2, (n - gamma) / res2
        if np.all(np.abs(alpha / beta - t) <= tol * t):
            break
    _, m2, res2 = moments(alpha / beta)  # evaluate the evidence exactly at the final (alpha, beta)
    evidence = (
        k / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * np.log(alpha + beta * s).sum(axis=0)
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(np.mean(evidence / n))


def _no_score(estimator: object, x: np.ndarray, y: np.ndarray, **kwargs: object) -> float:
    """A constant scorer: passing one is what makes RidgeClassifierCV store LOO predictions (see below)."""
    return 0.0


def linear_probe_score(features: np.ndarray, labels: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS) -> float:
    """Leave-one-out accuracy of a standardised ridge classifier: a linear probe with no training loop.

    Why ridge: its leave-one-out residuals have an exact closed form (``r_i / (1 - H_ii)`` with H the hat matrix), so
    one eigen/SVD decomposition gives the LOO predictions of every example for every alpha at once. The alpha with the
    lowest LOO squared error (ridge's own criterion) is chosen and the LOO accuracy at that alpha returned, so the
    reported number is not itself what was maximised. Standardisation is label-free: fitting the scaler on all rows
    leaks no labels into the held-out predictions. Caveat of LOO itself: with uninformative features and exactly
    balanced classes it falls *below* chance (removing a row tilts the intercept away from that row's class).

    Args:
        features: ``(n, d)`` frozen features.
        labels: 1-D class ids with at least two classes.
        alphas: ridge penalties to choose from (on standardised features).
    """
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"linear_probe_score needs 1-D class labels, got shape {y.shape}")
    if np.unique(y).size < 2:
        raise ValueError("linear_probe_score needs at least two classes")
    x = StandardScaler().fit_transform(np.asarray(features, dtype=np.float64))
    # Without a scorer sklearn stores only LOO *squared errors*; any scorer makes it store the LOO decision values
    # instead. Its own alpha choice is then ignored: the alpha is chosen below by LOO squared error on those values
    # (sklearn's "accuracy" scorer also mis-scores the single-column binary case).
    # An array, not a tuple: sklearn writes into a one-element ``alphas`` in place (a tuple raises TypeError).
    grid = np.asarray(alphas, dtype=np.float64).reshape(-1)
    ridge = RidgeClassifierCV(alphas=grid, scoring=_no_score, store_cv_results=True).fit(x, y)
    classes = ridge.classes_[1:] if ridge.classes_.size == 2 else ridge.classes_
    targets = np.where(y[:, None] == classes[None, :], 1.0, -1.0)  # the +-1 columns the ridge regressed on
    decisions = ridge.cv_results_  # (n, 1, n_alphas) for two classes, else (n, C, n_alphas)
    best = int(np.argmin(((decisions - targets[:, :, None]) ** 2).mean(axis=(0, 1))))
    decision = decisions[:, :, best]
    if decision.shape[1] == 1:
        predicted = ridge.classes_[(decision[:, 0] > 0).astype(int)]
    else:
        predicted = ridge.classes_[decision.argmax(axis=1)]
    return float(np.mean(predicted == y))


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two scorings of the same items: how far a cheap score reproduces the true ranking.

    Returns NaN (without a warning) when there are fewer than two items or either input is constant: no ordering
    exists to agree with, and a NaN shows that better than a misleading 0. Ties are handled by tau-b.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"kendall_tau needs two 1-D sequences of equal length, got {x.shape} and {y.shape}")
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y).statistic)


@dataclass(frozen=True)
class RankingScore:
    """One checkpoint's scores on one labelled feature set; ``seconds`` covers computing both scores."""

    model: str
    logme: float
    linear_probe: float
    num_examples: int
    feature_dim: int
    seconds: float


def score_features(model: str, features: np.ndarray, labels: np.ndarray) -> RankingScore:
    """One checkpoint's LogME and linear-probe scores on its frozen features; ``seconds`` covers both scores. With 2-D
    (regression / multi-hot) labels the probe is NaN: a leave-one-out accuracy needs one class per example."""
    f, y = np.asarray(features), np.asarray(labels)
    start = time.perf_counter()
    evidence = logme(f, y)
    probe = linear_probe_score(f, y) if y.ndim == 1 else math.nan
    return RankingScore(model, evidence, probe, int(f.shape[0]), int(f.shape[1]), time.perf_counter() - start)


def best_first(scores: Sequence[RankingScore]) -> list[RankingScore]:
    """Best LogME first, a non-finite one last. LogME orders the list because it is the calibrated,
    hyper-parameter-free score; the linear probe is reported beside it as the interpretable one."""
    return sorted(scores, key=lambda s: -s.logme if math.isfinite(s.logme) else math.inf)
