"""The shapes a run takes on its way to the Trainer: one task prepared (:class:`PreparedTask`, whatever the
modality), every setting resolved once the data is known (:class:`ResolvedRun`), then the strategy applied to the model
(:class:`PreparedRun`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, TrainingArguments

from ..data.labels import rows_digest
from ..data.splits import LabelledData
from ..models.blocks import BlockView
from ..models.prefix import PrefixSplit
from ..recipe import RecipeConfig
from ..run_record import RunRecord
from ..strategies.base import SourceModel, StrategyContext, TransferStrategy
from ..strategies.spec import StrategySpec
from .budget import Choices
from .task_metrics import TaskMetrics


@dataclass
class FeatureInputs:
    """A task's splits as its frozen prefix reads them: unaugmented model inputs, by position in each split."""

    row_ids: dict[str, list[int]]  # split -> each position's row in the dataset row_sources[split] fingerprints
    labels: dict[str, list]  # split -> each position's label (class id, multi-hot vector or value)
    model_inputs: Callable[[str, list[int]], dict[str, torch.Tensor]]  # (split, positions) -> a batch of inputs
    row_sources: dict[str, str]
    preprocessing: dict[str, Any]  # everything else the features depend on (transform config, tokenizer, length)
    augmented: bool  # the training split is augmented: its frozen features would change every epoch
    # split -> each position's input length (text: its tokens), so that encoding batches inputs of about one length;
    # None (images): encoded in the split's order
    lengths: Callable[[str], list[int]] | None = None


@dataclass
class PreparedTask:
    """Model, block view, datasets, collator, metrics and saver of one task, before any strategy is applied."""

    model: PreTrainedModel
    view: BlockView
    train_dataset: Any
    eval_dataset: Any
    data_collator: Callable
    metrics: TaskMetrics
    label_names: list[str] | None
    problem_type: str
    save: Callable[[nn.Module, str], None]  # save(model, output_dir): the library's native format
    record: RunRecord = field(default_factory=RunRecord)  # what the run did: written to its config, read by the card
    processing_class: Any = None  # saved next to the model (the tokenizer)
    base_model_reference: str = ""
    source_model_factory: Callable[[], SourceModel] | None = None  # the checkpoint with its source head (LwF)
    strategy: TransferStrategy | None = None  # the task's own (per-tower) strategy; None: --strategy
    # Runs once the strategy has set what trains, before the Trainer exists (e.g. caches frozen towers' features).
    finalise: Callable[[PreparedTask, nn.Module], None] | None = None
    # What the frozen-feature cache needs: the splits as the model reads them without augmentation; None: the task
    # caches its own way (the fusion towers) or not at all.
    feature_inputs: FeatureInputs | None = None
    # Each split's labels (class ids, vectors or values): the data-size defaults, class weights and balance read them.
    labels: dict[str, list] = field(default_factory=dict)
    # Extra evaluations after the main one (e.g. single-modality ablations): the prepared run -> eval metrics.
    extra_evaluation: Callable[[PreparedRun], dict[str, float]] | None = None
    # The config as the data resolved it (a strategy chosen by data size); None: the one the task was given.
    config: RecipeConfig | None = None
    # Self-training through the Trainer (a body that trains by SGD): the unlabelled examples as the model predicts
    # them (no labels), and the training set with some of them added under pseudo-labels (indices, class ids).
    unlabeled_dataset: Any = None
    with_pseudo_labels: Callable[[list[int], list[int]], Any] | None = None


@dataclass(frozen=True)
class ResolvedRun:
    """The run's configuration with every value chosen: what the Trainer, the saved config and the card read."""

    config: RecipeConfig  # the flags, presets and model defaults filled (:func:`~hf_transfer.recipe.resolve_config`)
    training: TrainingArguments  # ``config.training`` with the data-size choices, validated by TrainingArguments
    strategy: StrategySpec
    choices: Choices  # what was chosen automatically from the data (values and the reasons, for the log and card)
    class_weights: torch.Tensor | None = None  # ``--class_weights``: inverse-frequency weights of the training loss

    def to_dict(self) -> dict[str, Any]:
        """``hf_transfer_config.json``'s settings: every section as resolved, and what was chosen automatically."""
        out = self.config.to_dict(training=self.training)
        out["chosen_automatically"].update({f"training.{k}": v for k, v in self.choices.values.items()})
        return out


@dataclass
class PreparedRun:
    """A resolved run, its task (data, model, block view, metrics, saver) and the strategy applied to the model."""

    resolved: ResolvedRun
    task: PreparedTask
    strategy: TransferStrategy
    context: StrategyContext
    model: nn.Module  # what the Trainer trains: the task's model with the strategy applied (and perhaps wrapped)
    trainable_parameters: int
    total_parameters: int
    cached_split: PrefixSplit | None = None  # the cut the run trains past on cached features, when it does
    unlabeled: Any = None  # the unlabelled examples' cached features (``CachedRows``), for self-training
    anchors: Any = None  # each label's description as more examples of it (``LabelAnchors``, few-shot text)

    @property
    def config(self) -> RecipeConfig:
        return self.resolved.config

    @property
    def training(self) -> TrainingArguments:
        return self.resolved.training

    @property
    def class_weights(self) -> torch.Tensor | None:
        return self.resolved.class_weights


def record_of_data(data: LabelledData, base_model: str, **task_fields: Any) -> RunRecord:
    """A task's record: what every task fills the same way from its labelled data, and the task's own fields."""
    return RunRecord(
        base_model=base_model,
        dataset=data.source,
        train_samples=len(data.train),
        eval_samples=len(data.validation),
        validation_split=data.validation_split,
        no_validation=data.no_validation,
        eval_set=rows_digest(data.validation, data.row_sources["validation"]),
        skipped_images=dict(data.skipped_images),
        unlabeled_source=data.unlabeled_source or None,
        text_columns=list(data.text_columns),
        **task_fields,
    )
