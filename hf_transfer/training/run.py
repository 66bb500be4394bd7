"""One fine-tuning run: data → model → strategy → Trainer → evaluate → save. Recipes and the CLI call this."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import EarlyStoppingCallback, TrainingArguments, set_seed

from ..config import IMAGE_TRAINING_DEFAULTS, RecipeConfig
from ..data import build_image_transforms, collate_image_batch, image_transform_fn, load_image_data
from ..data.transforms import resolve_image_data_config
from ..exceptions import ConfigError
from ..hub.export import save_timm_model
from ..models.vision import build_image_model, count_parameters, resolve_model_source
from ..strategies import get_strategy_class
from .metrics import classification_metrics
from .trainer import TransferTrainer

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "hf_transfer_config.json"
# Files that mark a directory as holding a finished or interrupted run.
_RUN_MARKERS = ("all_results.json", "trainer_state.json", "config.json", "model.safetensors", CONFIG_FILENAME)


@dataclass
class FineTuneResult:
    output_dir: str
    metrics: dict[str, Any]
    label_names: list[str]
    trainable_parameters: int
    total_parameters: int
    model: Any = field(repr=False, default=None)
    trainer: Any = field(repr=False, default=None)


def check_output_dir(output_dir: str, overwrite: bool, resume: str | bool | None) -> None:
    """Refuse to write over a previous run (as the transformers example scripts do), before any heavy work."""
    path = Path(output_dir)
    if not path.is_dir() or overwrite or resume:
        return
    previous = [m for m in _RUN_MARKERS if (path / m).exists()] + [p.name for p in path.glob("checkpoint-*")]
    if previous:
        raise ConfigError(
            f"--output_dir {output_dir!r} already holds a run ({', '.join(sorted(previous)[:4])}). Pass "
            "--overwrite_output_dir to write over it, --resume_from_checkpoint to continue it, or choose another dir."
        )


def default_training_arguments(**overrides: Any) -> TrainingArguments:
    import torch

    values = {**IMAGE_TRAINING_DEFAULTS, "use_cpu": not torch.cuda.is_available(), **overrides}
    return TrainingArguments(**values)


def fine_tune(config: RecipeConfig) -> FineTuneResult:
    """Run one transfer experiment end to end and save a native-format model in ``output_dir``."""
    training = config.training or default_training_arguments()
    config.training = training
    started = time.perf_counter()
    check_output_dir(training.output_dir, config.run.overwrite_output_dir, training.resume_from_checkpoint)
    source = resolve_model_source(config.model)  # cheap, and fails fast on an unknown model name
    strategy = get_strategy_class(config.strategy.strategy)(config.strategy)
    set_seed(training.seed)

    with training.main_process_first(desc="loading the dataset"):
        data = load_image_data(config.data, seed=training.data_seed or training.seed)
    model, view = build_image_model(config.model, data.label_names, source)
    strategy.apply(view)
    trainable, total = count_parameters(model)

    data_config = resolve_image_data_config(model.timm_model, config.data.image_size)
    train_tf, eval_tf = build_image_transforms(data_config, config.data)
    channels = data_config["input_size"][0]
    train_ds = data.train.with_transform(image_transform_fn(train_tf, data.image_column, data.label_column, channels))
    eval_ds = data.validation.with_transform(
        image_transform_fn(eval_tf, data.image_column, data.label_column, channels)
    )

    callbacks = []
    if config.run.early_stopping_patience:
        if training.eval_strategy == "no" or not training.load_best_model_at_end:
            raise ConfigError(
                "--early_stopping_patience needs --eval_strategy epoch|steps and --load_best_model_at_end."
            )
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.run.early_stopping_patience))
    trainer = TransferTrainer(
        model=model,
        args=training,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collate_image_batch,
        compute_metrics=classification_metrics(len(data.label_names)),
        callbacks=callbacks,
        strategy=strategy,
        block_view=view,
    )
    train_result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    train_metrics = dict(train_result.metrics)
    train_metrics.update(train_samples=len(data.train), trainable_parameters=trainable, total_parameters=total)
    train_metrics.update(
        world_size=training.world_size, distributed_type=str(training.distributed_state.distributed_type)
    )
    train_metrics.update({f"skipped_{split}_images": n for split, n in data.skipped_images.items() if n})
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)

    eval_metrics = trainer.evaluate()
    eval_metrics["eval_samples"] = len(data.validation)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        save_timm_model(trainer.model.timm_model, training.output_dir, data.label_names, data_config)
        resolved = config.to_dict()
        resolved["provenance"] = {
            "base_model": source.reference,
            "from_scratch": config.model.from_scratch,
            "dataset": data.source,
            "label_names": data.label_names,
            "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
            "wall_time_s": round(time.perf_counter() - started, 1),
        }
        Path(training.output_dir, CONFIG_FILENAME).write_text(json.dumps(resolved, indent=2, default=str))
    all_metrics = {**train_metrics, **eval_metrics}
    return FineTuneResult(
        output_dir=os.path.abspath(training.output_dir),
        metrics=all_metrics,
        label_names=data.label_names,
        trainable_parameters=trainable,
        total_parameters=total,
        model=trainer.model,
        trainer=trainer,
    )
