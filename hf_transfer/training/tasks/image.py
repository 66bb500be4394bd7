"""Image classification: a timm backbone with a new head, on images with the checkpoint's own preprocessing;
single-label, multi-label or regression."""

from __future__ import annotations

import copy

from datasets import concatenate_datasets
from transformers import TrainingArguments

from ...config import ModelArguments
from ...data import build_image_transforms, collate_image_batch, image_transform_fn, load_image_data
from ...data.labels import ROW_COLUMN
from ...data.transforms import jsonable_data_config, resolve_image_data_config
from ...data.unlabeled import TRUE_LABEL, UNLABELED
from ...exceptions import ConfigError
from ...hub.export import save_timm_model
from ...models.references import ModelSource, resolve_image_source
from ...models.vision import build_image_model, create_timm_model
from ...recipe import RecipeConfig
from ...strategies.base import SourceModel
from ..run_types import FeatureInputs, PreparedTask, record_of_data
from ..size_defaults import with_strategy_for_data
from ..task_metrics import metrics_for


def prepare_image_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    source = resolve_image_source(config.model)  # cheap, and fails fast on an unknown model name
    with training.main_process_first(desc="loading the dataset"):
        data = load_image_data(config.data, seed=training.data_seed or training.seed)
    config = with_strategy_for_data(config, data)
    output_names = data.label_names or [data.label_column]  # regression: one output, named after its target
    model, view = build_image_model(config.model, output_names, source, data.problem_type)
    data_config = resolve_image_data_config(model.timm_model, config.data.image_size)
    train_tf, eval_tf = build_image_transforms(data_config, config.data)
    columns = (data.image_column, data.label_column, data_config["input_size"][0])
    unaugmented = {name: split.with_transform(image_transform_fn(eval_tf, *columns)) for name, split in data.splits()}
    inputs = dict(data.splits())
    if data.unlabeled is not None:  # their labels: what the source carried (-1: none), for reporting only
        inputs[UNLABELED] = data.unlabeled.rename_column(TRUE_LABEL, data.label_column)
        unaugmented[UNLABELED] = inputs[UNLABELED].with_transform(image_transform_fn(eval_tf, *columns))
    labels = {name: list(split[data.label_column]) for name, split in data.splits()}
    unlabeled, with_pseudo_labels = None, None
    if data.unlabeled is not None:
        images = data.unlabeled.remove_columns(TRUE_LABEL)  # its labels are for reporting, never for training
        unlabeled = images.with_transform(image_transform_fn(eval_tf, *columns))

        def with_pseudo_labels(indices: list[int], labels: list[int]):
            pseudo = images.select(indices).add_column(data.label_column, labels)
            pseudo = pseudo.cast(data.train.features)
            return concatenate_datasets([data.train, pseudo]).with_transform(image_transform_fn(train_tf, *columns))

    return PreparedTask(
        unlabeled_dataset=unlabeled,
        with_pseudo_labels=with_pseudo_labels,
        config=config,
        model=model,
        view=view,
        train_dataset=data.train.with_transform(image_transform_fn(train_tf, *columns)),
        eval_dataset=unaugmented["validation"],
        data_collator=collate_image_batch,
        metrics=metrics_for(data.problem_type, len(output_names)),
        label_names=data.label_names,
        problem_type=data.problem_type,
        save=lambda trained, out: save_timm_model(
            trained.timm_model, out, output_names, data_config, data.problem_type
        ),
        base_model_reference=source.reference,
        source_model_factory=lambda: timm_source_model(source, config.model),
        record=record_of_data(
            data,
            source.reference,
            data_config=jsonable_data_config(data_config),
            checkpoint_load=_load_summary(model),
        ),
        labels=labels,
        feature_inputs=FeatureInputs(
            row_ids={name: list(split[ROW_COLUMN]) for name, split in inputs.items()},
            labels={name: list(split[data.label_column]) for name, split in inputs.items()},
            model_inputs=lambda name, positions: collate_image_batch(_rows(unaugmented[name], positions)),
            row_sources=data.row_sources,
            preprocessing={"data_config": jsonable_data_config(data_config), "image_column": data.image_column},
            augmented=not config.data.no_augment,
        ),
    )


def _load_summary(model) -> str | None:
    """How much of a bare checkpoint file the model took (``--allow_partial_checkpoint`` may leave gaps)."""
    report = getattr(model.timm_model, "checkpoint_load_report", None)
    return report.summary() if report is not None else None


def _rows(split, positions: list[int]) -> list[dict]:
    batch = split[positions]  # one transform call for the whole batch
    return [dict(zip(batch, values)) for values in zip(*batch.values())]


def timm_source_model(source: ModelSource, args: ModelArguments) -> SourceModel:
    """The checkpoint with its own (e.g. ImageNet) classifier: LwF's teacher."""
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
