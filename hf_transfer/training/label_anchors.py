"""The label descriptions of a few-shot text run, as more training examples of each class ("anchors").

SetFit's documented way to use label names with few examples is to add templated examples ("This sentence is
{label}", ``setfit.get_templated_dataset``, two of each label by default) to the training set
(https://huggingface.co/docs/setfit/tutorials/zero_shot: "adding synthetic examples can also provide a performance
boost to few-shot classification"). Here each class's description (``--label_descriptions``, or its name in
``--label_template``: the texts zero-shot embeds) is :data:`COPIES` examples of that class in every batch of the
contrastive phase, so that each labelled example is paired with every class's description, and in the closed-form
head's fit. A closed-form head has no initialisation to take from the descriptions (its problem is convex): as
examples they reach both phases.

Anchors are never counted as labelled examples: the data-size defaults, the hold-out and the record's counts read
the labelled examples alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..config import SINGLE_LABEL
from ..exceptions import ConfigError
from .run_types import PreparedRun
from .zero_shot import embed_texts, label_descriptions

logger = logging.getLogger(__name__)

# Examples each description gives: SetFit's ``sample_size`` default. On a development split of Rotten Tomatoes (8
# per class, 3 seeds) 2 gained 5.6 points over no description, 1 gained 3.2 (benchmarks/RESULTS.md).
COPIES = 2


@dataclass(frozen=True)
class LabelAnchors:
    """Each class's description as a tokenised example: ``rows`` in the collator's format, labels included (for the
    contrastive phase's batches)."""

    texts: list[str]
    rows: list[dict]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([row["labels"] for row in self.rows], dtype=np.int64)

    def examples_line(self) -> str:
        return f"the {len(self.rows) // COPIES} label descriptions ({COPIES} copies of each)"

    def describe(self, label_names: list[str]) -> str:
        shown = ", ".join(f"{name!r}: {text!r}" for name, text in zip(label_names, self.texts[::COPIES]))
        return (
            f"the label descriptions, each as {COPIES} examples of its class ({shown}), in every batch of the "
            "contrastive phase and in the head's fit"
        )


SETFIT_TEMPLATE = "This sentence is {}"  # setfit.get_templated_dataset's: the names' template (--label_examples)


def anchors_wanted(prepared: PreparedRun) -> bool:
    """Whether a run with labelled examples trains on its label descriptions: ``--label_examples``, else where
    ``--label_descriptions`` or ``--label_template`` is given. Not by default: the bare label names in SetFit's
    template gained on two text sets' development splits and lost on the third's (six Reuters topics, whose names
    are abbreviations), benchmarks/RESULTS.md "Label descriptions as examples"."""
    data = prepared.config.data
    if len(prepared.task.train_dataset) == 0 or data.label_examples is False:
        return False
    return bool(data.label_examples) or (data.label_descriptions or data.label_template) is not None


ANCHORS_NEED = (
    "--label_examples (and --label_descriptions or --label_template with labelled examples) add each label's "
    "description to the examples of a head fitted in closed form (and of the contrastive phase, where there is one)."
)


def build_label_anchors(prepared: PreparedRun, closed_form: bool) -> LabelAnchors | None:
    """The run's anchors where they were asked for; ``closed_form``: the strategy fits its head in closed form (what
    reads them). Asked for where nothing would read them, the run is refused rather than ignoring them."""
    if not anchors_wanted(prepared):
        return None
    task = prepared.task
    if not closed_form or task.problem_type != SINGLE_LABEL:
        what = f"--strategy {prepared.strategy.name}" if closed_form is False else f"{task.problem_type} data"
        raise ConfigError(
            f"{ANCHORS_NEED} {what[0].upper() + what[1:]} trains its head by SGD: use --strategy contrastive, or "
            "linear_probe with --head_solver closed_form (or leave --strategy unset on a few examples a class), or "
            "drop the flag."
        )
    data = prepared.config.data
    if data.label_descriptions is None and data.label_template is None:  # --label_examples alone: SetFit's way
        data.label_template = SETFIT_TEMPLATE
        prepared.config.automatic[("data", "label_template")] = SETFIT_TEMPLATE  # chosen, and saved with the run
    texts = [text for text in label_descriptions(data, task.label_names) for _ in range(COPIES)]
    encoded = task.processing_class(texts, truncation=True)
    rows = [{**{key: values[i] for key, values in encoded.items()}, "labels": i // COPIES} for i in range(len(texts))]
    anchors = LabelAnchors(texts, rows)
    task.record.label_anchors = anchors.describe(task.label_names)
    logger.info("Training on %s.", task.record.label_anchors)
    return anchors


def anchor_features(prepared: PreparedRun, anchors: LabelAnchors) -> np.ndarray:
    """The anchors' pooled features from the (tuned) body, as the cache holds the labelled examples'."""
    return embed_texts(prepared, anchors.texts).float().cpu().numpy()
