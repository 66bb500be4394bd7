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

from ..config import TRAINING_ARGUMENT_NAMES, TRAINING_DEFAULTS, RecipeConfig, validate_config
from ..exceptions import ConfigError
from ..hub import HubPushSettings, push_to_hub, write_model_card
from ..models.vision import count_parameters
from ..strategies import StrategyContext, build_strategy
from .tasks import PreparedTask, prepare_task
from .trainer import TransferTrainer

logger = logging.getLogger(__name__)

CONFIG_FILENAME = "hf_transfer_config.json"
EVAL_PREDICTIONS_FILENAME = "eval_predictions.json"
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


def default_training_arguments(task: str = "image-classification", **overrides: Any) -> TrainingArguments:
    import torch

    defaults = {k: v for k, v in TRAINING_DEFAULTS[task].items() if k in TRAINING_ARGUMENT_NAMES}
    values = {**defaults, "use_cpu": not torch.cuda.is_available(), **overrides}
    return TrainingArguments(**values)


def fine_tune(config: RecipeConfig, callbacks: list | None = None) -> FineTuneResult:
    """Run one transfer experiment end to end and save a native-format model in ``output_dir``.

    ``callbacks``: extra transformers ``TrainerCallback``s (measurements, custom logging), run beside the strategy's.
    """
    training = config.training or default_training_arguments(config.task)
    config.training = training
    validate_config(config)
    started = time.perf_counter()
    check_output_dir(training.output_dir, config.run.overwrite_output_dir, training.resume_from_checkpoint)
    # The Trainer must neither push (it would create the repo and push checkpoints itself) nor pickle the token into
    # training_args.bin: take both out of its arguments; the finished run is pushed below, in one commit.
    hub = HubPushSettings.take_from(training)
    set_seed(training.seed)

    task = prepare_task(config, training)
    strategy = task.strategy if task.strategy is not None else build_strategy(config.strategy)
    context = StrategyContext(
        view=task.view,
        task=config.task,
        base_model_reference=task.base_model_reference,
        source_model_factory=task.source_model_factory,
        save_native=task.save,
    )
    strategy.apply(context)
    model = strategy.wrap_model(task.model, context)
    if task.finalise is not None:
        task.finalise(task, model)
    if strategy.trainable_over_run(context) is not None and training.world_size > 1:
        training.ddp_find_unused_parameters = True  # a block frozen for now still belongs to the DDP reducer
    trainable, total = count_parameters(model)
    _choose_best_metric(training, task)

    callbacks = list(callbacks or [])
    if config.run.early_stopping_patience:
        if training.eval_strategy == "no" or not training.load_best_model_at_end:
            raise ConfigError(
                "--early_stopping_patience needs --eval_strategy epoch|steps and --load_best_model_at_end."
            )
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.run.early_stopping_patience))
    trainer = TransferTrainer(
        model=model,
        args=training,
        train_dataset=task.train_dataset,
        eval_dataset=task.eval_dataset,
        data_collator=task.data_collator,
        processing_class=task.processing_class,
        compute_metrics=task.metrics.compute,
        callbacks=callbacks,
        strategy=strategy,
        context=context,
    )
    train_result = trainer.train(resume_from_checkpoint=training.resume_from_checkpoint)
    train_metrics = dict(train_result.metrics)
    train_metrics.update(strategy.after_train(trainer, context))  # e.g. WiSE-FT's interpolation sweep
    train_metrics.update(train_samples=len(task.train_dataset), trainable_parameters=trainable, total_parameters=total)
    train_metrics.update(
        world_size=training.world_size, distributed_type=str(training.distributed_state.distributed_type)
    )
    skipped = task.provenance.get("skipped_images") or {}
    train_metrics.update({f"skipped_{split}_images": n for split, n in skipped.items() if n})
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)

    # predict() = evaluate() plus the predictions, in one pass: the model card's confusion matrix needs them
    prediction = trainer.predict(task.eval_dataset, metric_key_prefix="eval")
    eval_metrics = dict(prediction.metrics)
    eval_metrics["eval_samples"] = len(task.eval_dataset)
    if task.extra_evaluation is not None:
        eval_metrics.update(task.extra_evaluation(training))
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()

    if trainer.is_world_process_zero():
        if not strategy.save(trainer.model, training.output_dir, context):  # adapters save themselves
            task.save(trainer.model, training.output_dir)
        if task.processing_class is not None:
            task.processing_class.save_pretrained(training.output_dir)
        resolved = config.to_dict()
        resolved["provenance"] = {
            **task.provenance,
            "from_scratch": config.model.from_scratch,
            "strategy": strategy.name,
            "problem_type": task.problem_type,
            "label_names": task.label_names,
            "wall_time_s": round(time.perf_counter() - started, 1),
        }
        Path(training.output_dir, CONFIG_FILENAME).write_text(json.dumps(resolved, indent=2, default=str))
        save_eval_predictions(training.output_dir, prediction, task.problem_type)
        card_repo = (hub.repo_id, hub.revision) if hub else (None, None)
        write_model_card(training.output_dir, *card_repo, overwrite=True)
        if hub is not None:  # a failure raises PushError; the run stays on disk for `hf-transfer push`
            push_to_hub(training.output_dir, hub.repo_id, private=hub.private, revision=hub.revision, token=hub.token)
    return FineTuneResult(
        output_dir=os.path.abspath(training.output_dir),
        metrics={**train_metrics, **eval_metrics},
        label_names=task.label_names,
        trainable_parameters=trainable,
        total_parameters=total,
        model=trainer.model,
        trainer=trainer,
    )


def save_eval_predictions(output_dir: str, prediction, problem_type: str) -> None:
    """Validation references and predictions (class ids, multi-hot vectors or values), for reports and model cards."""
    import numpy as np

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    logits, references = np.asarray(logits), np.asarray(prediction.label_ids)
    if problem_type == "single_label_classification":
        predicted = logits.argmax(axis=-1)
    elif problem_type == "multi_label_classification":
        predicted = (logits > 0).astype(int)  # sigmoid(x) > 0.5
    else:
        predicted = logits.reshape(-1)
    payload = {"problem_type": problem_type, "references": references.tolist(), "predictions": predicted.tolist()}
    Path(output_dir, EVAL_PREDICTIONS_FILENAME).write_text(json.dumps(payload))


def _choose_best_metric(training: TrainingArguments, task: PreparedTask) -> None:
    """Keep the user's ``metric_for_best_model`` if this task reports it; else use the task's own (e.g. mse)."""
    wanted = (training.metric_for_best_model or "").removeprefix("eval_")
    if not training.load_best_model_at_end or wanted in (*task.metrics.names, "loss"):
        return
    if wanted not in ("", "accuracy"):  # "accuracy" is the recipes' default, not a user choice
        raise ConfigError(
            f"--metric_for_best_model {wanted!r} is not reported for {task.problem_type}; "
            f"choose one of {', '.join(task.metrics.names)} or loss."
        )
    training.metric_for_best_model = task.metrics.best
    training.greater_is_better = task.metrics.greater_is_better
