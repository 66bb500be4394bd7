"""``contrastive``: SetFit's two phases in this toolkit's terms (Tunstall et al., 2022, "Efficient Few-Shot Learning
Without Prompts", https://arxiv.org/abs/2209.11055).

Phase 1 fine-tunes the body on pairs of the labelled examples — same class → cosine similarity 1, different → 0 —
on the pooled, normalised embeddings (:mod:`hf_transfer.training.contrastive`). Phase 2 freezes the body and fits the
head on its features: in closed form on the frozen-feature cache (as SetFit fits scikit-learn's logistic regression),
or by the Trainer where features are not cached. With few labels the pairs are the point: 16 examples make 120 pairs
that say what "similar" means for this task, where a classifier sees 16 points.
"""

from __future__ import annotations

from ..config import TEXT_CLASSIFICATION
from ..exceptions import ConfigError
from .base import ClosedFormHead, ContrastivePhase, StrategyContext
from .freezing import HEAD_C, LinearProbe
from .registry import register_strategy
from .settings import Setting, positive

# Chosen on a development split of the Rotten Tomatoes pool (seeds 100-102, 600 pool reviews, never the benchmark's
# held-out set; RESULTS.md, "Contrastive phase"), by one rule: more epochs only where they gain at least a point, i.e.
# at each size measured the fewest epochs within a point of 30. 30 beat 10 at 8, 16 and 64 per class (+1.1, +2.5,
# +1.2). At 8 per class (16 examples, one batch an epoch) 15 are within a point (-0.5; 20: -0.4) for 3 s less a run;
# at 16 and 64 per class 20 are (0.0, -0.2) and 15 are not (-1.2, -0.95). Between 16 and 32 examples nothing was
# measured: they get the 20 that 32 needs.
SMALL_RUN_EXAMPLES, SMALL_RUN_EPOCHS = 16, 15  # up to this many labelled examples: this many epochs
DEFAULT_EPOCHS = 20  # above
MIN_STEPS = 10  # at least this many optimizer steps, however few the examples
MAX_STEPS = 500  # ... and at most this many, however many
DEFAULT_BATCH = 16
DEFAULT_LEARNING_RATE = 2e-5  # SetFit's body rate


@register_strategy("contrastive")
class Contrastive(LinearProbe):
    """Phase 1 trains the body on same-/different-class pairs (cosine loss); phase 2 fits the head on its frozen
    features (SetFit's recipe)."""

    summary = (
        "phase 1: the body, on all same-/different-class pairs of each batch of labelled examples (cosine loss on the "
        "normalised mean-pooled embeddings, as SetFit); phase 2: the head alone, in closed form on the cached features"
    )
    pooling = "mean"
    settings = (
        Setting(
            "contrastive_epochs",
            int,
            None,
            "passes over the labelled examples in the contrastive phase (each batch gives all its pairs)",
            check=positive,
            default_text=f"{SMALL_RUN_EPOCHS} up to {SMALL_RUN_EXAMPLES} labelled examples, else {DEFAULT_EPOCHS}; "
            f"within {MIN_STEPS}-{MAX_STEPS} steps",
        ),
        Setting(
            "contrastive_batch_size",
            int,
            DEFAULT_BATCH,
            "labelled examples per contrastive step (a batch of b gives b(b-1)/2 pairs)",
            check=lambda v: None if v >= 2 else "--contrastive_batch_size must be at least 2 (a pair).",
        ),
        Setting(
            "contrastive_learning_rate",
            float,
            DEFAULT_LEARNING_RATE,
            "learning rate of the body in the contrastive phase",
            check=positive,
        ),
        Setting(
            "contrastive_pseudo_labels",
            bool,
            False,
            "with unlabelled examples (--unlabeled_*): a second contrastive phase on the pairs of the labelled and "
            "the pseudo-labelled examples, about as many steps as the first (the pseudo-labels feed the pairs)",
        ),
        HEAD_C,
    )

    def closed_form_head(self) -> ClosedFormHead | None:
        return ClosedFormHead(self.setting("head_c"))

    def body_phase(self, train_examples: int) -> ContrastivePhase:
        batch = min(int(self.setting("contrastive_batch_size")), max(2, train_examples))
        epochs = self.args.contrastive_epochs
        if epochs is None:  # sized by the data: passes by size, within [MIN_STEPS, MAX_STEPS] steps
            passes = SMALL_RUN_EPOCHS if train_examples <= SMALL_RUN_EXAMPLES else DEFAULT_EPOCHS
            steps_per_epoch = -(-train_examples // batch)
            steps = min(max(passes * steps_per_epoch, MIN_STEPS), MAX_STEPS)
            epochs = max(1, round(steps / steps_per_epoch))
        return ContrastivePhase(
            int(epochs),
            batch,
            float(self.setting("contrastive_learning_rate")),
            bool(self.setting("contrastive_pseudo_labels")),
        )

    def apply(self, context: StrategyContext) -> None:
        if context.task != TEXT_CLASSIFICATION:
            raise ConfigError(
                "--strategy contrastive is for text classification (a sentence encoder's pairs); for images use "
                "linear_probe, lp_ft or full."
            )
        super().apply(context)
