"""Image+text classification as a task: two towers, per-tower strategies, cached frozen features, ablations."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from typing import Any

from torch import nn
from transformers import AutoConfig, TrainingArguments

from ..config import ModelArguments, RecipeConfig, StrategyArguments, tower_strategy_arguments
from ..exceptions import ConfigError
from ..models.blocks import BlockView, timm_block_view
from ..models.fusion import FusionConfig, FusionForClassification, build_text_tower
from ..strategies import StrategyContext, TransferStrategy, build_strategy
from ..strategies.towers import Tower, TowerStrategies
from .feature_cache import cache_frozen_towers, cached_transform_fn, is_frozen
from .metrics import metrics_for
from .tasks import PreparedTask

logger = logging.getLogger(__name__)

SINGLE = "single_label_classification"


def prepare_multimodal_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    from ..data.multimodal import (
        MultimodalCollator,
        load_multimodal_data,
        multimodal_transform_fn,
        tokenize_multimodal,
    )
    from ..data.transforms import build_image_transforms, resolve_image_data_config
    from ..models.text import load_tokenizer, resolve_text_source
    from ..models.vision import resolve_model_source

    fusion = config.fusion
    modalities = fusion.modality_list()
    hub = {"model_revision": config.model.model_revision, "cache_dir": config.model.cache_dir}
    image_source = text_source = tokenizer = None
    if "image" in modalities:
        image_source = resolve_model_source(ModelArguments(model_name_or_path=fusion.image_model_name_or_path, **hub))
    if "text" in modalities:
        text_args = ModelArguments(model_name_or_path=fusion.text_model_name_or_path, **hub)
        text_source = resolve_text_source(text_args)
        tokenizer = load_tokenizer(text_source, text_args)
    max_length = config.data.max_seq_length or min(128, tokenizer.model_max_length if tokenizer else 128)
    if tokenizer is not None and max_length > tokenizer.model_max_length:
        raise ConfigError(f"--max_seq_length {max_length} exceeds the text tower's {tokenizer.model_max_length}.")

    with training.main_process_first(desc="loading and tokenising the dataset"):
        data = load_multimodal_data(config.data, seed=training.data_seed or training.seed)
        train, validation = data.train, data.validation
        if tokenizer is not None:
            train = tokenize_multimodal(train, tokenizer, data.text_columns, max_length, "tokenising train")
            validation = tokenize_multimodal(validation, tokenizer, data.text_columns, max_length, "tokenising eval")

    model = build_fusion_model(config, data.label_names, image_source, text_source)
    if model.text_tower is not None:
        model.config.text_tower["max_seq_length"] = max_length  # the model describes its own preprocessing
    data_config = channels = None
    train_tf = eval_tf = None
    if model.image_tower is not None:
        data_config = resolve_image_data_config(model.image_tower, config.data.image_size)
        model.config.image_tower["data_config"] = _jsonable(data_config)
        train_tf, eval_tf = build_image_transforms(data_config, config.data)
        channels = data_config["input_size"][0]
    towers = {m: getattr(model, f"{m}_tower") for m in modalities}
    strategy = TowerStrategies(
        [
            Tower(
                name=name,
                strategy=build_strategy(args),
                context=StrategyContext(
                    view=tower_view(name, towers[name]),
                    task="image-classification" if name == "image" else "text-classification",
                    base_model_reference=(image_source if name == "image" else text_source).reference,
                ),
                learning_rate=getattr(fusion, f"{name}_learning_rate"),
            )
            for name, args in tower_strategy_arguments(config).items()
        ]
    )
    collator = MultimodalCollator(tokenizer)
    columns = (data.image_column, data.label_column, channels or 3)
    without_images = model.image_tower is None  # a text-only model never decodes the images

    def pipeline(split, transform):
        keep = [c for c in split.column_names if not (without_images and c == data.image_column)]
        return split.with_transform(multimodal_transform_fn(transform, *columns), columns=keep)

    base_models = " + ".join(s.reference for s in (image_source, text_source) if s is not None)
    task = PreparedTask(
        model=model,
        view=fusion_view(model),
        train_dataset=pipeline(train, train_tf),
        eval_dataset=pipeline(validation, eval_tf),
        data_collator=collator,
        metrics=metrics_for(SINGLE, len(data.label_names)),
        label_names=data.label_names,
        problem_type=SINGLE,
        save=save_fusion_model,
        processing_class=tokenizer,
        base_model_reference=base_models,
        strategy=strategy,
        provenance={
            "base_model": base_models,
            "image_model": image_source.reference if image_source else None,
            "text_model": text_source.reference if text_source else None,
            "dataset": data.source,
            "modalities": modalities,
            "fusion": fusion.fusion,
            "text_columns": data.text_columns,
            "pooling": config.model.pooling,
            "max_seq_length": max_length,
            "train_samples": len(data.train),
            "eval_samples": len(data.validation),
            "validation_split": data.validation_split,
            "skipped_images": data.skipped_images,
            "data_config": _jsonable(data_config) if data_config else None,
        },
    )
    raw = {"train": train, "validation": validation}

    def finalise(task: PreparedTask, trained: nn.Module) -> None:
        """Once the strategies have set what trains: cache the frozen towers' features, and plan the ablations."""
        cached = [m for m in modalities if _cacheable(m, trained, config)]
        task.provenance["cached_features"] = cached
        if cached:
            splits = {}
            for name, split in raw.items():
                result = cache_frozen_towers(
                    trained,
                    split,
                    image_column=data.image_column,
                    modalities=cached,
                    eval_transform=eval_tf,
                    channels=channels or 3,
                    tokenizer=tokenizer,
                    batch_size=training.per_device_eval_batch_size,
                    split_name=name,
                )
                base = multimodal_transform_fn(
                    train_tf if name == "train" else eval_tf,
                    *columns,
                    passthrough=[f"{m}_feature_id" for m in cached],
                )
                drop_images = "image" in cached or without_images
                keep = [c for c in result.dataset.column_names if not (drop_images and c == data.image_column)]
                splits[name] = result.dataset.with_transform(cached_transform_fn(base, result.tables), columns=keep)
            task.train_dataset, task.eval_dataset = splits["train"], splits["validation"]
        run_ablations = fusion.ablations
        if run_ablations is None:
            run_ablations = len(modalities) == 2 and len(cached) == 2
        elif run_ablations and len(cached) != 2:
            raise ConfigError(
                "--ablations retrains a head per modality on cached features: it needs both towers frozen and "
                f"cached (cached here: {cached or 'none'}). Run --modalities image / text yourself instead."
            )
        if run_ablations:
            task.extra_evaluation = lambda args: ablate_modalities(trained, task, args)

    task.finalise = finalise
    return task


def _cacheable(modality: str, model: FusionForClassification, config: RecipeConfig) -> bool:
    if not config.fusion.cache_frozen_features or not is_frozen(getattr(model, f"{modality}_tower")):
        return False
    if modality == "image" and not config.data.no_augment:
        logger.info("The image tower is frozen but training images are augmented: pass --no_augment to cache it.")
        return False
    return True


def build_fusion_model(config: RecipeConfig, label_names: list[str], image_source, text_source):
    """Pretrained towers (random ones with ``--image_from_scratch`` / ``--text_from_scratch``) + a new fusion head."""
    fusion, model_args = config.fusion, config.model
    image_tower = text_tower = None
    image_spec: dict[str, Any] = {}
    text_spec: dict[str, Any] = {}
    if image_source is not None:
        from ..models.vision import clean_pretrained_cfg, create_timm_model

        model_kwargs = {"drop_rate": model_args.drop_rate, "drop_path_rate": model_args.drop_path_rate}
        model_kwargs = {k: v for k, v in model_kwargs.items() if v is not None}
        scratch = fusion.image_from_scratch or model_args.from_scratch
        image_tower = create_timm_model(
            image_source, num_classes=0, pretrained=not scratch, cache_dir=model_args.cache_dir, **model_kwargs
        )
        image_spec = {
            "architecture": image_tower.pretrained_cfg.get("architecture") or type(image_tower).__name__,
            "model_args": model_kwargs,
            "pretrained_cfg": clean_pretrained_cfg(image_tower.pretrained_cfg),
            "num_features": int(image_tower.num_features),
            "reference": image_source.reference,
            "from_scratch": scratch,
        }
    if text_source is not None:
        hub = {"revision": model_args.model_revision, "cache_dir": model_args.cache_dir}
        encoder_config = AutoConfig.from_pretrained(text_source.path, **hub)
        scratch = fusion.text_from_scratch or model_args.from_scratch
        text_tower = build_text_tower(encoder_config, None if scratch else text_source.path, **hub)
        encoder = {k: v for k, v in text_tower.config.to_dict().items() if k != "_name_or_path"}  # no local paths
        text_spec = {
            "config": encoder,
            "num_features": int(text_tower.config.hidden_size),
            "reference": text_source.reference,
            "from_scratch": scratch,
        }
    fusion_config = FusionConfig(
        image_tower=image_spec,
        text_tower=text_spec,
        fusion=fusion.fusion,
        fusion_hidden_size=fusion.fusion_hidden_size,
        fusion_dropout=fusion.fusion_dropout,
        text_pooling=model_args.pooling or "mean",
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type=SINGLE,
    )
    return FusionForClassification(fusion_config, image_tower=image_tower, text_tower=text_tower)


def tower_view(name: str, tower: nn.Module) -> BlockView:
    """A tower's own block view; its head is empty (the fusion head is not part of either tower)."""
    from ..models.text import text_block_view

    view = timm_block_view(tower, tower) if name == "image" else text_block_view(tower)
    view.check_complete()
    return view


def fusion_view(model: FusionForClassification) -> BlockView:
    """The whole model as the Trainer sees it: the towers as two blocks, the fusion head as the head."""
    names = [n for n, _ in model.named_parameters()]
    blocks = [[n for n in names if n.startswith(f"{m}_tower.")] for m in model.config.modalities]
    view = BlockView(
        model=model,
        stem=[],
        blocks=blocks,
        head=[n for n in names if n.startswith("fusion_head.")],
        block_names=[f"{m}_tower" for m in model.config.modalities],
    )
    view.check_complete()
    return view


def save_fusion_model(model: FusionForClassification, output_dir: str) -> None:
    """One ``config.json`` + one safetensors file; adapters (LoRA, IA3) are merged into their towers first, so the
    saved model has exactly the structure its config describes."""
    from peft import PeftModel

    for modality in model.config.modalities:
        tower = getattr(model, f"{modality}_tower")
        if isinstance(tower, PeftModel):
            setattr(model, f"{modality}_tower", tower.merge_and_unload())
    model.save_pretrained(output_dir)


def ablate_modalities(model: FusionForClassification, task: PreparedTask, training: TrainingArguments) -> dict:
    """Train a head on each modality alone (same frozen towers, same cached features, same budget) and evaluate it:
    how much of the accuracy needs both the image and the text."""
    from .trainer import TransferTrainer

    results: dict[str, float] = {}
    for modality in model.config.modalities:
        config = FusionConfig.from_dict(model.config.to_dict())
        config.fusion = "concat"
        setattr(config, "text_tower" if modality == "image" else "image_tower", {})
        tower = getattr(model, f"{modality}_tower")
        ablated = FusionForClassification(config, **{f"{modality}_tower": tower})
        view = fusion_view(ablated)
        context = StrategyContext(view=view, task="multimodal-classification")
        with tempfile.TemporaryDirectory() as scratch:
            args = dataclasses.replace(
                training,
                output_dir=scratch,
                eval_strategy="no",
                save_strategy="no",
                load_best_model_at_end=False,
                push_to_hub=False,
                report_to="none",
            )
            trainer = TransferTrainer(
                model=ablated,
                args=args,
                train_dataset=task.train_dataset,
                data_collator=task.data_collator,
                compute_metrics=task.metrics.compute,
                strategy=_HeadOnly(StrategyArguments()),
                context=context,
            )
            trainer.train()
            metrics = trainer.evaluate(task.eval_dataset, metric_key_prefix=f"eval_{modality}_only")
        kept = {k: v for k, v in metrics.items() if k.split("_only_")[-1] in task.metrics.names}
        logger.info("Ablation, %s only: %s", modality, kept)
        results.update(kept)
    return results


class _HeadOnly(TransferStrategy):
    """No hooks: the towers are frozen (their features cached), only the new head trains."""

    name = "head only (ablation)"


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
