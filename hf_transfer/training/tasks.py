"""Per-task preparation: everything between a config and a ready Trainer, and how the result is saved.

Each task turns a :class:`RecipeConfig` into the same :class:`PreparedTask` (model, block view, datasets, collator,
metrics, saver), so :func:`~hf_transfer.training.run.fine_tune` is one code path for every modality.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from transformers import DataCollatorWithPadding, PreTrainedModel, TrainingArguments

from ..config import RecipeConfig
from ..exceptions import ConfigError
from ..models.blocks import BlockView
from ..strategies.base import SourceModel, TransferStrategy
from .metrics import TaskMetrics, metrics_for

logger = logging.getLogger(__name__)


@dataclass
class PreparedTask:
    model: PreTrainedModel
    view: BlockView
    train_dataset: Any
    eval_dataset: Any
    data_collator: Callable
    metrics: TaskMetrics
    label_names: list[str] | None
    problem_type: str
    save: Callable[[nn.Module, str], None]  # save(model, output_dir): the library's native format
    provenance: dict[str, Any] = field(default_factory=dict)
    processing_class: Any = None  # saved next to the model (the tokenizer)
    base_model_reference: str = ""
    source_model_factory: Callable[[], SourceModel] | None = None  # the checkpoint with its source head (LwF)
    strategy: TransferStrategy | None = None  # the task's own (per-tower) strategy; None: --strategy
    # Runs once the strategy has set what trains, before the Trainer exists (e.g. caches frozen towers' features).
    finalise: Callable[[PreparedTask, nn.Module], None] | None = None
    # Extra evaluations after the main one (e.g. single-modality ablations): TrainingArguments -> eval metrics.
    extra_evaluation: Callable[[TrainingArguments], dict[str, float]] | None = None


def prepare_image_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    from ..data import build_image_transforms, collate_image_batch, image_transform_fn, load_image_data
    from ..data.transforms import resolve_image_data_config
    from ..hub.export import save_timm_model
    from ..models.vision import build_image_model, resolve_model_source

    source = resolve_model_source(config.model)  # cheap, and fails fast on an unknown model name
    with training.main_process_first(desc="loading the dataset"):
        data = load_image_data(config.data, seed=training.data_seed or training.seed)
    model, view = build_image_model(config.model, data.label_names, source)
    data_config = resolve_image_data_config(model.timm_model, config.data.image_size)
    train_tf, eval_tf = build_image_transforms(data_config, config.data)
    channels = data_config["input_size"][0]
    columns = (data.image_column, data.label_column, channels)
    return PreparedTask(
        model=model,
        view=view,
        train_dataset=data.train.with_transform(image_transform_fn(train_tf, *columns)),
        eval_dataset=data.validation.with_transform(image_transform_fn(eval_tf, *columns)),
        data_collator=collate_image_batch,
        metrics=metrics_for("single_label_classification", len(data.label_names)),
        label_names=data.label_names,
        problem_type="single_label_classification",
        save=lambda trained, out: save_timm_model(trained.timm_model, out, data.label_names, data_config),
        base_model_reference=source.reference,
        source_model_factory=lambda: timm_source_model(source, config.model),
        provenance={
            "base_model": source.reference,
            "dataset": data.source,
            "train_samples": len(data.train),
            "eval_samples": len(data.validation),
            "skipped_images": data.skipped_images,
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        },
    )


def prepare_text_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    from ..data.text import load_text_data, tokenize_text_dataset
    from ..models.text import build_text_model, load_tokenizer, resolve_text_source

    source = resolve_text_source(config.model)
    tokenizer = load_tokenizer(source, config.model)
    max_length = config.data.max_seq_length or min(128, tokenizer.model_max_length)
    if max_length > tokenizer.model_max_length:
        raise ConfigError(
            f"--max_seq_length {max_length} exceeds this model's maximum of {tokenizer.model_max_length} tokens."
        )
    with training.main_process_first(desc="loading and tokenising the dataset"):
        data = load_text_data(config.data, seed=training.data_seed or training.seed)
        train = tokenize_text_dataset(data.train, tokenizer, data, max_length, "tokenising train")
        validation = tokenize_text_dataset(data.validation, tokenizer, data, max_length, "tokenising validation")
    model, view = build_text_model(config.model, source, data.label_names, data.problem_type)

    return PreparedTask(
        model=model,
        view=view,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=DataCollatorWithPadding(tokenizer),
        metrics=metrics_for(data.problem_type, len(data.label_names or [])),
        label_names=data.label_names,
        problem_type=data.problem_type,
        save=lambda trained, out: trained.save_pretrained(out),
        processing_class=tokenizer,
        base_model_reference=source.reference,
        source_model_factory=lambda: text_source_model(source, config.model),
        provenance={
            "base_model": source.reference,
            "dataset": data.source,
            "text_columns": data.text_columns,
            "pooling": config.model.pooling,
            "max_seq_length": max_length,
            "train_samples": len(data.train),
            "eval_samples": len(data.validation),
        },
    )


def timm_source_model(source, args) -> SourceModel:
    import copy

    from ..models.vision import create_timm_model

    if args.from_scratch:
        raise ConfigError("--strategy lwf distils from the pretrained model's own head; it cannot run --from_scratch.")
    original = create_timm_model(source, num_classes=None, pretrained=True)  # None: keep the checkpoint's own head
    if getattr(original, "num_classes", 0) == 0:
        raise ConfigError(f"--strategy lwf: {source.reference!r} has no classifier head to preserve.")
    return SourceModel(
        model=original,
        head=copy.deepcopy(original.get_classifier()),
        forward=lambda model, inputs: model(inputs["pixel_values"]),
    )


def text_source_model(source, args) -> SourceModel:
    import copy

    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(source.path)
    architectures = config.architectures or []
    if args.from_scratch or not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(
            f"--strategy lwf needs a checkpoint with a source-task classification head to preserve; "
            f"{source.reference!r} has none (architectures: {architectures})."
        )
    original = AutoModelForSequenceClassification.from_pretrained(source.path)

    def forward(model: nn.Module, inputs: dict):
        return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits

    return SourceModel(model=original, head=copy.deepcopy(original.classifier), forward=forward)


def prepare_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    if config.task == "multimodal-classification":
        from .multimodal import prepare_multimodal_task

        return prepare_multimodal_task(config, training)
    return TASKS[config.task](config, training)


TASKS: dict[str, Callable[[RecipeConfig, TrainingArguments], PreparedTask]] = {
    "image-classification": prepare_image_task,
    "text-classification": prepare_text_task,
}
