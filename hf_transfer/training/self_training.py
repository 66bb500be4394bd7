"""Self-training: the model labels the unlabelled examples, the confident ones join the labelled ones with their
predicted labels, and it is trained again — on cached features a few rounds, each a closed-form head fit of seconds
(:func:`self_train`); where the body trains by SGD, a round through the Trainer (:func:`self_train_with_trainer`).

The method is the classic one (Scudder 1965; Yarowsky 1995; "pseudo-labels", Lee 2013) with class-balanced selection
(Zou et al. 2018, "CBST", https://arxiv.org/abs/1810.07911): in round ``r`` each class receives the ``r × per_class``
unlabelled examples predicted as it with the highest probability (at least ``threshold``), and every class the same
number — the smallest class's count — so a class the head favours cannot swamp the rest. Pseudo-labels are chosen
afresh each round from the current head, so a wrong one of an early round can be dropped later.

Pseudo-labels can reinforce the head's own errors. The number of rounds kept is therefore chosen by cross-validation
on the labelled examples alone: for each fold, the whole procedure runs without that fold's examples (its own
pseudo-labels included), and scores them after every round; the rounds kept are those with the best mean fold
accuracy (ties go to more rounds, so a strict loss is needed to stop). When a round makes the labelled examples worse
to predict, the run stops before it and keeps the head before it. When every round scores the same (after the
contrastive phase the tuned body predicts its own labelled examples perfectly in every fold), the check is blind,
and the record and the card say so rather than call the rounds kept "the best".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers.trainer_utils import SaveStrategy

from ..config import RunArguments
from ..run_record import RunRecord
from .linear_head import LinearHead, fit_linear_head, smallest_class

logger = logging.getLogger(__name__)

# Defaults chosen on a development split of the Rotten Tomatoes pool (RESULTS.md, "Unlabelled data", "How the
# defaults were set"): 16 pseudo-labels per labelled example beat 4 and 64; 1 and 3 rounds scored the same there.
DEFAULT_ROUNDS = 3
TRAINER_ROUNDS = 1  # default rounds where each one retrains the body by SGD (a round costs a training run)
PER_CLASS_PER_LABELLED = 16  # default pseudo-labels per class in round 1, per labelled example of the smallest class
MAX_FOLDS = 5


@dataclass(frozen=True)
class SelfTrainingSettings:
    rounds: int
    threshold: float  # the least class probability a pseudo-label needs
    per_class: int  # pseudo-labels per class in round 1; round r takes r × per_class


@dataclass
class Round:
    """What one round did (the record and the card show each)."""

    round: int
    added: dict[str, int]  # class -> pseudo-labels in the training set this round
    confident: int  # unlabelled examples at or above the threshold
    pseudo_label_accuracy: float | None = None  # against the labels the unlabelled source carried, if any
    labelled_cv_accuracy: float | None = None  # the labelled examples' mean fold accuracy after this round

    @classmethod
    def of(
        cls,
        number: int,
        pseudo: tuple[np.ndarray, np.ndarray],
        confident: int,
        true_labels: np.ndarray,
        label_names: list[str],
        classes: np.ndarray,
    ) -> Round:
        """A round's record from its pseudo-labels (indices, class ids), scored where the true label is known."""
        indices, labels = pseudo
        known = true_labels[indices] >= 0
        accuracy = float((true_labels[indices][known] == labels[known]).mean()) if known.any() else None
        added = {label_names[k]: int((labels == k).sum()) for k in classes}
        return cls(number, added, confident, accuracy)

    def line(self) -> str:
        accuracy, cv_accuracy = self.pseudo_label_accuracy, self.labelled_cv_accuracy
        known = f", pseudo-label accuracy {accuracy:.3f}" if accuracy is not None else ""
        cv = f", labelled CV accuracy {cv_accuracy:.3f}" if cv_accuracy is not None else ""
        return f"Self-training round {self.round}: pseudo-labels {self.added}{known}{cv}."


@dataclass
class SelfTrainingReport:
    settings: SelfTrainingSettings
    unlabeled: int
    rounds: list[Round] = field(default_factory=list)  # round 0: the labelled examples alone
    kept: int = 0  # the rounds whose head is the model's
    why: str = ""
    seconds: float = 0.0
    pseudo_labels: tuple[np.ndarray, np.ndarray] | None = None  # the kept round's (indices, class ids); not recorded

    def to_dict(self) -> dict:
        return {
            "unlabeled_examples": self.unlabeled,
            "rounds": self.settings.rounds,
            "threshold": self.settings.threshold,
            "per_class": self.settings.per_class,
            "rounds_kept": self.kept,
            "why": self.why,
            "seconds": round(self.seconds, 2),
            "per_round": [vars(r) for r in self.rounds],
        }

    def line(self) -> str:
        kept = self.rounds[self.kept]
        added = ", ".join(f"{name} {n}" for name, n in kept.added.items()) or "none"
        return (
            f"self-training on {self.unlabeled} unlabelled examples: {self.kept} of {len(self.rounds) - 1} round(s) "
            f"kept ({self.why}); pseudo-labels per class: {added}"
        )


def settings_for(run: RunArguments, labels: np.ndarray, by_trainer: bool = False) -> SelfTrainingSettings:
    """The run's settings, their defaults filled from the labelled examples' ``labels`` (fewer rounds where each is a
    training run)."""
    default_rounds = TRAINER_ROUNDS if by_trainer else DEFAULT_ROUNDS
    per_class = run.pseudo_labels_per_class
    return SelfTrainingSettings(
        rounds=default_rounds if run.self_training_rounds is None else run.self_training_rounds,
        threshold=run.pseudo_label_threshold,
        per_class=per_class if per_class is not None else PER_CLASS_PER_LABELLED * max(1, smallest_class(labels)),
    )


def record(report: SelfTrainingReport, run_record: RunRecord) -> None:
    """Log the rounds' outcome and keep the report in the run's record (its config file and card read it)."""
    logger.info("Self-training (%.1f s): %s.", report.seconds, report.line())
    run_record.self_training = report.to_dict()


def softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.as_tensor(np.asarray(logits, dtype=np.float64)), dim=-1).numpy()


def probabilities(head: LinearHead, features: np.ndarray) -> np.ndarray:
    return softmax(features @ head.weight.T.astype(np.float64) + head.bias.astype(np.float64))


def select_pseudo_labels(
    probs: np.ndarray, classes: np.ndarray, threshold: float, per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels): for each of ``classes``, its most probable predicted examples at or above ``threshold``;
    every class the same count, ``per_class`` at most and no more than the class with fewest candidates has."""
    predicted, confidence = probs.argmax(axis=1), probs.max(axis=1)
    ranked = {}
    for label in classes:
        candidates = np.flatnonzero((predicted == label) & (confidence >= threshold))
        ranked[label] = candidates[np.argsort(-confidence[candidates], kind="stable")]
    count = min(per_class, *(len(rows) for rows in ranked.values()))
    indices = np.concatenate([ranked[label][:count] for label in classes]).astype(np.int64)
    labels = np.concatenate([np.full(count, label) for label in classes]).astype(np.int64)
    return indices, labels


def _rounds(
    features: np.ndarray,
    labels: np.ndarray,
    unlabeled: np.ndarray,
    num_classes: int,
    c: float,
    settings: SelfTrainingSettings,
    seed: int,
) -> list[tuple[LinearHead, np.ndarray, np.ndarray, int]]:
    """The heads of round 0 (labelled only) to the last round that added something, with each round's pseudo-labels
    (indices, labels) and how many examples were confident."""
    classes = np.unique(labels)
    head = fit_linear_head(features, labels, num_classes, c, seed)
    out = [(head, np.zeros(0, np.int64), np.zeros(0, np.int64), 0)]
    for number in range(1, settings.rounds + 1):
        probs = probabilities(head, unlabeled)
        indices, pseudo = select_pseudo_labels(probs, classes, settings.threshold, number * settings.per_class)
        confident = int((probs.max(axis=1) >= settings.threshold).sum())
        if len(indices) == 0:  # nothing confident: the round adds nothing, and the next would not either
            out.append((head, indices, pseudo, confident))
            break
        if np.array_equal(indices, out[-1][1]) and np.array_equal(pseudo, out[-1][2]):
            break  # the same pseudo-labels as the round before: the same head again
        head = fit_linear_head(
            np.concatenate([features, unlabeled[indices]]), np.concatenate([labels, pseudo]), num_classes, c, seed
        )
        out.append((head, indices, pseudo, confident))
    return out


def self_train(
    features: np.ndarray,
    labels: np.ndarray,
    unlabeled: np.ndarray,
    true_labels: np.ndarray,
    label_names: list[str],
    c: float,
    settings: SelfTrainingSettings,
    seed: int = 0,
) -> tuple[LinearHead, SelfTrainingReport]:
    """The head after the rounds cross-validation keeps, and what every round did. ``c`` is the head's inverse L2
    strength (chosen on the labelled examples); ``true_labels`` (-1: unknown) are only compared with."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    features, unlabeled = np.asarray(features, np.float64), np.asarray(unlabeled, np.float64)
    labels, num_classes = np.asarray(labels, np.int64), len(label_names)
    sequence = _rounds(features, labels, unlabeled, num_classes, c, settings, seed)
    report = SelfTrainingReport(settings, len(unlabeled))
    true_labels, classes = np.asarray(true_labels), np.unique(labels)
    for number, (_, indices, pseudo, confident) in enumerate(sequence):
        report.rounds.append(Round.of(number, (indices, pseudo), confident, true_labels, label_names, classes))
    folds = min(MAX_FOLDS, smallest_class(labels))
    if folds < 2:
        report.kept = _last_that_added(sequence)
        report.why = "every round kept: a class has one labelled example, too few to cross-validate"
    else:
        scores = np.zeros((folds, len(sequence)))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for fold, (train, held_out) in enumerate(splitter.split(features, labels)):
            heads = _rounds(features[train], labels[train], unlabeled, num_classes, c, settings, seed)
            for number in range(len(sequence)):
                head = heads[min(number, len(heads) - 1)][0]
                predicted = probabilities(head, features[held_out]).argmax(axis=1)
                scores[fold, number] = (predicted == labels[held_out]).mean()
        means = scores.mean(axis=0)
        for number, score in enumerate(means):
            report.rounds[number].labelled_cv_accuracy = round(float(score), 4)
        best = float(means.max())
        report.kept = min(max(n for n, s in enumerate(means) if np.isclose(s, best)), _last_that_added(sequence))
        report.why = (
            f"the best {folds}-fold cross-validated accuracy on the labelled examples, {means[report.kept]:.3f}, "
            f"against {means[0]:.3f} without pseudo-labels"
        )
        if len(means) > 1 and np.allclose(means, means[0]):  # the check saw no difference: say so, not "the best"
            report.why = (
                f"every round scored {means[0]:.3f} in {folds}-fold cross-validation on the labelled examples, so the "
                "check could not tell the rounds apart and kept them as they ran"
                + (" (a body tuned on these examples predicts them all)" if means[0] == 1.0 else "")
            )
    report.seconds = time.perf_counter() - started
    report.pseudo_labels = sequence[report.kept][1], sequence[report.kept][2]
    return sequence[report.kept][0], report


def _last_that_added(sequence: list) -> int:
    """The last round whose pseudo-labels were used (a round that found no confident example trains nothing)."""
    return max(n for n, entry in enumerate(sequence) if n == 0 or len(entry[1]))


def self_train_with_trainer(
    prepared, trainer, settings: SelfTrainingSettings, on_round: Callable[[int], None] | None = None
) -> SelfTrainingReport:
    """Self-training where the body trains by SGD (``full``, ``freeze``, adapters): after the run's training, the
    model predicts the unlabelled examples, the class-balanced confident ones join the training set with their
    predicted labels, and the Trainer trains on, with a fresh optimizer and schedule of the run's length in steps —
    each round a training run, so the rounds are not cross-validated: every round that added pseudo-labels is
    kept. The rounds write no checkpoint: the last one stays the labelled training's end, which a resumed run
    continues from (then runs the rounds again), and the Trainer's rotation cannot delete it. ``on_round(n)`` is
    called as round n starts (the run's progress, for a stop's one line)."""
    task = prepared.task
    classes = np.unique(np.asarray(task.labels["train"]))
    truth = np.asarray(task.feature_inputs.labels.get("unlabeled", [-1] * len(task.unlabeled_dataset)))
    report = SelfTrainingReport(settings, len(task.unlabeled_dataset))
    report.rounds.append(Round(0, {task.label_names[k]: 0 for k in classes}, 0))
    started, steps = time.perf_counter(), trainer.state.global_step
    trainer.args.max_steps = steps  # a round is as long as the run in steps, not in epochs of the larger set
    trainer.args.save_strategy = SaveStrategy.NO
    for number in range(1, settings.rounds + 1):
        if on_round is not None:
            on_round(number)
        logits = trainer.predict(task.unlabeled_dataset, metric_key_prefix="unlabeled").predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        probs = softmax(logits)
        indices, pseudo = select_pseudo_labels(probs, classes, settings.threshold, number * settings.per_class)
        confident = int((probs.max(axis=1) >= settings.threshold).sum())
        report.rounds.append(Round.of(number, (indices, pseudo), confident, truth, task.label_names, classes))
        logger.info(report.rounds[-1].line())
        if len(indices) == 0:
            break
        trainer.train_dataset = task.with_pseudo_labels(indices.tolist(), pseudo.tolist())
        trainer.optimizer, trainer.lr_scheduler = None, None  # a new schedule: the last one ended at zero
        trainer.train()
        report.kept = number
    report.why = (
        "every round that added pseudo-labels: the body trains by SGD, so checking a round on held-out labelled "
        "examples would mean a training run per fold"
    )
    report.seconds = time.perf_counter() - started
    return report
