"""The strategy a run gets when the user names none: chosen from the task and the labelled examples per class, once
the data is loaded (before the model is built: the strategy decides the text pooling).

Measured (``benchmarks/small_data.py``; ``benchmarks/RESULTS.md``, "Few labels", "Curves behind the text
default" and "Above the boundary"): on Rotten Tomatoes the contrastive strategy (SetFit's two phases, no hold-out)
beats full fine-tuning at every size measured up to 256 per class (8: 0.615 vs 0.538; 32: 0.672 vs 0.627; 64: 0.698
vs 0.656; on a development split, 128: 0.769 vs 0.708 and 256: 0.788 vs 0.778, 3 of 3 seeds each; on the held-out
set at 256: 0.759 vs 0.736), and on six Reuters topics at 32 (0.929 vs 0.916); with its phase at 15 epochs up to 16
examples and 20 above it beats SetFit 1.2 on Rotten Tomatoes and on the convention speeches at 8, 16 and 64 per
class (at 8 by 0.5 and 0.4 points). The boundary is the largest size measured where it gains at least a point on the
development split (the rule that set its epochs): at 256 it is +1.0 for about 3.6x the time of ``full``. Full
fine-tuning is kept for plenty of data (0.788 on all of Rotten Tomatoes); contrastive was not measured above 256.

On images up to 20 per class, freezing the stem and the first half of the blocks (``freeze``, its default count) beat
full fine-tuning on a development split of both image sets (MNIST digits, easy-vqa's coloured shapes) at 5 and 20 per
class, by 0.9 to 2.6 points, and trains faster ("Images: the default by size"); above 20 full fine-tuning stays (first
of the transfer study at 100 per class: 0.979 vs 0.970). Values the user set are never changed: a ``--strategy`` given
is the strategy used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from ..config import IMAGE_CLASSIFICATION, SINGLE_LABEL, TEXT_CLASSIFICATION
from ..data.splits import LabelledData
from ..exceptions import ConfigError
from ..recipe import RecipeConfig, resolve_config, strategy_is_automatic, unresolved_copy
from ..strategies import check_strategy_arguments
from ..strategies.settings import StrategyArgumentsBase

logger = logging.getLogger(__name__)

CONTRASTIVE_UP_TO = 256  # labelled examples per class (smallest class) up to which text gets `contrastive`
FREEZE_HALF_UP_TO = 20  # labelled images per class (smallest class) up to which images get `freeze` of half the blocks


def default_strategy(task: str, per_class: int | None) -> tuple[str, str] | None:
    """(strategy, why) for ``task`` with ``per_class`` examples in its smallest class (None: not single-label), or
    None to keep the task's own default."""
    if per_class == 0:
        return "linear_probe", "zero-shot: no labelled example, the head is built from the label descriptions"
    if task == TEXT_CLASSIFICATION and per_class is not None and per_class <= CONTRASTIVE_UP_TO:
        return "contrastive", (
            f"{per_class} examples in the smallest class ≤ {CONTRASTIVE_UP_TO}: the measured best few-label text "
            "strategy"
        )
    if task == IMAGE_CLASSIFICATION and per_class is not None and per_class <= FREEZE_HALF_UP_TO:
        return "freeze", (
            f"{per_class} images in the smallest class ≤ {FREEZE_HALF_UP_TO}: the stem and the first half of the "
            "blocks frozen, the measured best few-label image strategy"
        )
    return None


def closed_form_default_up_to(config: RecipeConfig) -> int:
    """Up to how many examples per class the run's strategy would choose nothing on a validation split, so none is
    held out (0: always hold out, as before): text up to :data:`CONTRASTIVE_UP_TO` where the strategy is, or by
    default becomes, ``contrastive`` (fixed epochs, then a closed-form head whose C is cross-validated on the training
    features). Above that size a hold-out is a small share of the labels and buys a validation metric."""
    if config.task != TEXT_CLASSIFICATION:
        return 0
    if strategy_is_automatic(config) or config.strategy.strategy == "contrastive":
        return CONTRASTIVE_UP_TO
    return 0


def with_strategy_for_data(config: RecipeConfig, data: LabelledData) -> RecipeConfig:
    """``config``, or a re-resolved copy with the strategy the data size calls for when the user named none."""
    if not strategy_is_automatic(config):
        return config
    per_class = labelled_per_class(config, data)
    chosen = default_strategy(config.task, per_class)
    strategy = config.strategy.strategy if chosen is None else chosen[0]
    _check_settings_are_read(dataclasses.replace(config.strategy, strategy=strategy), per_class)
    if strategy == config.strategy.strategy:
        return config
    why = chosen[1]
    resolved = unresolved_copy(config)
    resolved.strategy.strategy = strategy
    resolved = resolve_config(resolved)
    resolved.automatic[("strategy", "strategy")] = strategy  # still chosen, not given
    logger.info("Strategy %s (%s).", strategy, why)
    return resolved


def labelled_per_class(config: RecipeConfig, data: LabelledData) -> int | None:
    """The smallest class's labelled training examples (None: not single-label), counting a validation split the run
    held out of them. The hold-out was decided on that count, for the strategy that size gets, so the strategy must
    not be chosen again on what the hold-out left: 264 reviews a class are above the text boundary of 256 (``full``,
    which chooses its checkpoint on the 40 held out), not 224 below it (``contrastive``, which would spend them on a
    validation metric that chooses nothing). Sampled or capped training examples are counted as they train."""
    if data.problem_type != SINGLE_LABEL:
        return None
    counts = Counter(data.train[data.label_column])
    held_out_of_train = data.validation_split is None and not data.no_validation
    if held_out_of_train and config.data.train_samples_per_class is None and config.data.max_train_samples is None:
        counts.update(data.validation[data.label_column])
    return min(counts.values(), default=0)


def _check_settings_are_read(args: StrategyArgumentsBase, per_class: int | None) -> None:
    """A strategy setting given for a strategy the data size did not choose (``--contrastive_epochs`` on 500
    reviews a class, ``--head_c`` on 5 images a class) is refused once the choice is known, whichever it is, saying
    why the strategy is not the one the setting is for."""
    try:
        check_strategy_arguments(args)
    except ConfigError as err:
        size = f"{per_class} examples in the smallest class" if per_class is not None else "this data"
        raise ConfigError(
            f"{err} No --strategy was given, and for {size} the default is {args.strategy}: pass "
            "--strategy to use the one the setting is for."
        ) from None


def strategy_choice(config: RecipeConfig, per_class: int | None) -> str | None:
    """Why the run has its strategy, when the user named none (for the log, the record and the card)."""
    if not strategy_is_automatic(config):
        return None
    chosen = default_strategy(config.task, per_class)
    why = chosen[1] if chosen and chosen[0] == config.strategy.strategy else "the task's default"
    return f"--strategy {config.strategy.strategy} ({why})"
