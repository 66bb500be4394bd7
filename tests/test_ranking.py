"""Checkpoint-ranking scores: LogME against an independent brute-force evidence, the LOO ridge probe, Kendall's tau."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import StandardScaler

from hf_transfer.study.transferability import (
    RankingScore,
    best_first,
    kendall_tau,
    linear_probe_score,
    logme,
    score_features,
)


def log_evidence(features: np.ndarray, y: np.ndarray, log_alpha: float, log_beta: float) -> float:
    """log p(y | F, alpha, beta) written out directly from the d x d posterior precision A (no SVD, no fixed point)."""
    n, d = features.shape
    alpha, beta = math.exp(log_alpha), math.exp(log_beta)
    a = alpha * np.eye(d) + beta * features.T @ features
    m = beta * np.linalg.solve(a, features.T @ y)
    return float(
        n / 2 * log_beta
        + d / 2 * log_alpha
        - n / 2 * math.log(2 * math.pi)
        - beta / 2 * np.sum((y - features @ m) ** 2)
        - alpha / 2 * m @ m
        - 0.5 * np.linalg.slogdet(a)[1]
    )


def brute_force_logme(features: np.ndarray, y: np.ndarray) -> float:
    """Maximise the evidence over a log-grid of (alpha, beta), refine with Nelder-Mead, and divide by n."""
    grid = np.linspace(-8.0, 8.0, 65)
    values = np.array([[log_evidence(features, y, la, lb) for lb in grid] for la in grid])
    i, j = np.unravel_index(values.argmax(), values.shape)
    assert 0 < i < grid.size - 1 and 0 < j < grid.size - 1, "optimum on the grid edge: pick data with an interior one"
    result = minimize(
        lambda p: -log_evidence(features, y, p[0], p[1]),
        x0=[grid[i], grid[j]],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
    )
    return -result.fun / features.shape[0]


@pytest.mark.parametrize(
    ("n", "d", "seed", "rank_deficient"),
    [(6, 2, 0, False), (4, 10, 1, False), (8, 3, 0, True)],
    ids=["n>d", "n<d", "rank-deficient"],
)
def test_logme_matches_brute_force_evidence(n: int, d: int, seed: int, rank_deficient: bool) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, d))
    if rank_deficient:
        features[:, 2] = features[:, 0] + features[:, 1]
    y = features @ rng.normal(size=d) + 0.7 * rng.normal(size=n)
    assert logme(features, y[:, None]) == pytest.approx(brute_force_logme(features, y), abs=1e-4)


def test_class_ids_are_one_hot_columns_averaged() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    features = rng.normal(size=(40, 5))
    one_hot = np.eye(3)[labels]
    per_column = [logme(features, one_hot[:, [c]]) for c in range(3)]
    assert logme(features, labels) == pytest.approx(logme(features, one_hot), abs=1e-12)
    assert logme(features, labels) == pytest.approx(np.mean(per_column), abs=1e-12)


def test_non_integer_1d_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        logme(np.ones((3, 2)), np.array([0.5, 1.0, 2.0]))


def separable_problem(n: int = 240, d: int = 16, classes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = 6.0 * rng.normal(size=(classes, d))
    return centres[labels] + rng.normal(size=(n, d)), labels


def test_separating_features_beat_random_features() -> None:
    good, labels = separable_problem()
    random = np.random.default_rng(1).normal(size=good.shape)
    assert logme(good, labels) > logme(random, labels) + 0.1
    assert linear_probe_score(good, labels) > linear_probe_score(random, labels) + 0.3


@pytest.mark.parametrize("classes", [2, 4])
def test_linear_probe_is_perfect_on_separable_data(classes: int) -> None:
    features, labels = separable_problem(classes=classes)
    assert linear_probe_score(features, labels) == 1.0


def test_linear_probe_is_near_chance_on_random_labels() -> None:
    rng = np.random.default_rng(2)
    features, labels = rng.normal(size=(400, 8)), rng.integers(0, 4, 400)
    assert abs(linear_probe_score(features, labels) - 0.25) < 0.1


def test_kendall_tau() -> None:
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau([1.0], [2.0]))
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_logme_is_invariant_to_row_order() -> None:
    features, labels = separable_problem(seed=3)
    order = np.random.default_rng(4).permutation(len(labels))
    assert logme(features[order], labels[order]) == pytest.approx(logme(features, labels), abs=1e-6)


def test_scores_sort_best_first() -> None:
    """What ``rank_models`` does with each checkpoint's cached features: score them, then sort best LogME first."""
    good, labels = separable_problem()
    random = np.random.default_rng(5).normal(size=good.shape)
    scores = best_first([score_features("random", random, labels), score_features("good", good, labels)])
    assert [s.model for s in scores] == ["good", "random"]
    assert all(isinstance(s, RankingScore) for s in scores)
    assert scores[0].num_examples == good.shape[0] and scores[0].feature_dim == good.shape[1]
    assert scores[0].linear_probe == 1.0 and all(s.seconds >= 0 for s in scores)
    assert scores[0].logme == logme(good, labels)
    failed = dataclasses.replace(scores[0], model="nan", logme=math.nan)
    assert [s.model for s in best_first([failed, *scores])] == ["good", "random", "nan"]  # a NaN score sorts last
    multi_hot = np.eye(labels.max() + 1)[labels]
    assert math.isnan(score_features("good", good, multi_hot).linear_probe)  # the probe needs one class per row


@pytest.mark.parametrize("classes", [2, 3])
def test_linear_probe_equals_an_explicit_leave_one_out_loop(classes: int) -> None:
    rng = np.random.default_rng(6)
    features, labels = rng.normal(size=(30, 4)), rng.integers(0, classes, 30)
    features[:, 0] += labels  # some signal, so the accuracy is not trivially at chance
    scaled = StandardScaler().fit_transform(features)  # label-free, fitted on all rows as linear_probe_score does
    hits = []
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        probe = RidgeClassifier(alpha=3.0).fit(scaled[keep], labels[keep])
        hits.append(probe.predict(scaled[i : i + 1])[0] == labels[i])
    assert linear_probe_score(features, labels, alphas=(3.0,)) == pytest.approx(np.mean(hits))
