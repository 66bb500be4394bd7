"""Image+text classification: two towers with per-tower strategies, a fusion head, cached frozen towers, ablations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from datasets import Dataset
from torch import nn
from transformers import PreTrainedTokenizerBase, TrainingArguments

from ...config import SINGLE_LABEL, ModelArguments
from ...data.multimodal import MultimodalCollator, load_multimodal_data, multimodal_transform_fn, tokenize_multimodal
from ...data.splits import LabelledData
from ...data.transforms import build_image_transforms, jsonable_data_config, resolve_image_data_config
from ...exceptions import ConfigError
from ...hub.export import save_fusion_model
from ...models.blocks import is_frozen
from ...models.fusion import FusionForClassification, build_fusion_model, fusion_block_view, tower_block_view
from ...models.references import resolve_image_source, resolve_text_source
from ...models.text import load_tokenizer, set_max_seq_length
from ...recipe import RecipeConfig, tower_strategy_arguments
from ...run_record import FrozenFeatures
from ...strategies import ComposedStrategy, StrategyContext
from ...strategies.towers import Tower, TowerStrategies
from ..ablation import ablate_modalities
from ..feature_store import FeatureStore, tensor_content_hash
from ..fusion_cache import cache_frozen_towers, cached_transform_fn
from ..run_types import PreparedTask, record_of_data
from ..task_metrics import metrics_for

logger = logging.getLogger(__name__)


@dataclass
class FusionInputs:
    """How raw rows become model inputs: what caching frozen towers (after the strategies ran) needs to redo it."""

    data: LabelledData
    splits: dict[str, Dataset]  # "train"/"validation", tokenised, images still raw
    transforms: dict[str, Any]  # "train"/"validation" image transforms (None without an image tower)
    tokenizer: PreTrainedTokenizerBase | None
    channels: int
    modalities: list[str]

    def columns(self) -> tuple[str, str, int]:
        return self.data.image_column, self.data.label_column, self.channels

    def pipeline(self, split: Dataset, name: str, tables: dict[str, torch.Tensor] | None = None) -> Dataset:
        """The split as the Trainer reads it. A modality with a table of cached features gets its rows' features
        instead of its raw input; a model without an image tower never decodes the images."""
        cached = list(tables or {})
        drop_images = "image" not in self.modalities or "image" in cached
        keep = [c for c in split.column_names if not (drop_images and c == self.data.image_column)]
        passthrough = [f"{m}_feature_id" for m in cached]
        transform = multimodal_transform_fn(self.transforms[name], *self.columns(), passthrough=passthrough)
        if tables:
            transform = cached_transform_fn(transform, tables)
        return split.with_transform(transform, columns=keep)


def prepare_multimodal_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    fusion = config.fusion
    modalities = fusion.modality_list()
    hub = {"model_revision": config.model.model_revision, "cache_dir": config.model.cache_dir}
    image_source = text_source = tokenizer = None
    if "image" in modalities:
        image_source = resolve_image_source(ModelArguments(model_name_or_path=fusion.image_model_name_or_path, **hub))
    if "text" in modalities:
        text_args = ModelArguments(model_name_or_path=fusion.text_model_name_or_path, **hub)
        text_source = resolve_text_source(text_args)
        tokenizer = load_tokenizer(text_source, text_args)
    max_length = (
        None if tokenizer is None else set_max_seq_length(tokenizer, config.data.max_seq_length, "the text tower")
    )

    with training.main_process_first(desc="loading and tokenising the dataset"):
        data = load_multimodal_data(config.data, seed=training.data_seed or training.seed)
        splits = {"train": data.train, "validation": data.validation}
        if tokenizer is not None:
            splits = {
                name: tokenize_multimodal(split, tokenizer, data.text_columns, max_length, f"tokenising {name}")
                for name, split in splits.items()
            }

    model = build_fusion_model(fusion, config.model, data.label_names, image_source, text_source)
    data_config = None
    transforms: dict[str, Any] = {"train": None, "validation": None}
    if model.text_tower is not None:
        model.config.text_tower["max_seq_length"] = max_length  # the model describes its own preprocessing
    if model.image_tower is not None:
        data_config = resolve_image_data_config(model.image_tower, config.data.image_size)
        model.config.image_tower["data_config"] = jsonable_data_config(data_config)
        transforms["train"], transforms["validation"] = build_image_transforms(data_config, config.data)
    channels = data_config["input_size"][0] if data_config else 3
    inputs = FusionInputs(data, splits, transforms, tokenizer, channels, modalities)
    sources = {"image": image_source, "text": text_source}
    base_models = " + ".join(s.reference for s in sources.values() if s is not None)
    return PreparedTask(
        model=model,
        view=fusion_block_view(model),
        train_dataset=inputs.pipeline(splits["train"], "train"),
        eval_dataset=inputs.pipeline(splits["validation"], "validation"),
        data_collator=MultimodalCollator(tokenizer),
        metrics=metrics_for(SINGLE_LABEL, len(data.label_names)),
        label_names=data.label_names,
        problem_type=SINGLE_LABEL,
        save=save_fusion_model,
        processing_class=tokenizer,
        base_model_reference=base_models,
        strategy=tower_strategies(config, model, sources),
        finalise=partial(cache_frozen_features, inputs=inputs, config=config, training=training),
        labels={"train": list(data.train[data.label_column]), "validation": list(data.validation[data.label_column])},
        record=record_of_data(
            data,
            base_models,
            image_model=image_source.reference if image_source else None,
            text_model=text_source.reference if text_source else None,
            modalities=modalities,
            fusion=fusion.fusion,
            pooling=config.model.pooling,
            max_seq_length=max_length,
            data_config=jsonable_data_config(data_config) if data_config else None,
        ),
    )


def tower_strategies(config: RecipeConfig, model: FusionForClassification, sources: dict[str, Any]) -> TowerStrategies:
    """Each tower adapted by its own (composed) strategy, seeing only its own block view."""
    towers = []
    for name, args in tower_strategy_arguments(config).items():
        context = StrategyContext(
            view=tower_block_view(name, getattr(model, f"{name}_tower")),
            task=f"{name}-classification",
            base_model_reference=sources[name].reference,
        )
        learning_rate = getattr(config.fusion, f"{name}_learning_rate")
        towers.append(Tower(name, ComposedStrategy(args), context, learning_rate))
    return TowerStrategies(towers)


def cache_frozen_features(
    task: PreparedTask, trained: nn.Module, *, inputs: FusionInputs, config: RecipeConfig, training: TrainingArguments
) -> None:
    """Once the strategies have set what trains: encode each distinct input of a frozen tower once, and plan the
    single-modality ablations (cheap only on cached features)."""
    cached = [m for m in inputs.modalities if _cacheable(m, trained, config)]
    task.record.cached_features = cached
    if cached:
        datasets, store, dtype = {}, FeatureStore(), config.run.feature_cache_dtype
        counts = {"frozen_features_encoded": 0, "frozen_features_reused": 0}
        for name, split in inputs.splits.items():
            result = cache_frozen_towers(
                trained,
                split,
                image_column=inputs.data.image_column,
                modalities=cached,
                eval_transform=inputs.transforms["validation"],
                channels=inputs.channels,
                tokenizer=inputs.tokenizer,
                batch_size=training.per_device_eval_batch_size,
                split_name=name,
                store=store,
                key_parts={m: tower_key_parts(trained, m, inputs, config, name) for m in cached},
                dtype=dtype,
            )
            datasets[name] = inputs.pipeline(result.dataset, name, result.tables)
            counts["frozen_features_encoded"] += result.counts["encoded"]
            counts["frozen_features_reused"] += result.counts["reused"]
        task.train_dataset, task.eval_dataset = datasets["train"], datasets["validation"]
        task.record.frozen_features = FrozenFeatures("frozen towers", dtype, **counts)
    run_ablations = config.fusion.ablations
    if run_ablations is None:
        run_ablations = len(inputs.modalities) == 2 and len(cached) == 2
    elif run_ablations and len(cached) != 2:
        raise ConfigError(
            "--ablations retrains a head per modality on cached features: it needs both towers frozen and "
            f"cached (cached here: {cached or 'none'}). Run --modalities image / text yourself instead."
        )
    if run_ablations:
        task.extra_evaluation = ablate_modalities


def tower_key_parts(
    model: FusionForClassification, modality: str, inputs: FusionInputs, config: RecipeConfig, split: str
) -> dict:
    """What a frozen tower's features depend on besides the input itself: the tower's content and preprocessing
    (and, for images named by their file, the dataset those files belong to)."""
    tower = getattr(model, f"{modality}_tower")
    parts = {
        "model": tensor_content_hash([*tower.named_parameters(), *tower.named_buffers()]),
        "tower": modality,
        "dtype": config.run.feature_cache_dtype,
    }
    if modality == "image":
        parts["preprocessing"] = model.config.image_tower.get("data_config")
        parts["rows_of"] = inputs.data.row_sources[split]
    else:
        parts["preprocessing"] = {"pooling": model.config.text_pooling}
    return parts


def _cacheable(modality: str, model: FusionForClassification, config: RecipeConfig) -> bool:
    if not config.run.cache_frozen_features or not is_frozen(getattr(model, f"{modality}_tower")):
        return False
    if modality == "image" and not config.data.no_augment:
        logger.info("The image tower is frozen but training images are augmented: pass --no_augment to cache it.")
        return False
    return True
