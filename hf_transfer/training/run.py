"""One fine-tuning run: data → model → strategy → Trainer → evaluate → save. Recipes and the CLI call this."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from ..config import CONFIG_FILENAME, EVAL_PREDICTIONS_FILENAME, SINGLE_LABEL
from ..hub import HubPushSettings, push_to_hub, write_model_card
from ..hub.artifacts import CARD_FILENAME
from ..hub.card_writer import GENERATED_MARKER
from ..recipe import RecipeConfig, resolve_config
from ..run_record import SECTION as RECORD_SECTION
from .cached_head import fit_cached_head
from .faults import RunProgress, faults_as_one_line
from .interrupts import StopAtNextStep, stop_on_signals
from .output_dir import OutputDirLock, check_previous_run
from .prefix_cache import release_cached_forward
from .prepare import prepare
from .resume import RecordRunIdentity, check_same_run, checkpoint_step, resolve_resume_checkpoint
from .run_types import PreparedRun
from .self_training import record, self_train_with_trainer, settings_for
from .trainer import build_transfer_trainer
from .zero_shot import zero_shot_head

logger = logging.getLogger(__name__)


@dataclass
class FineTuneResult:
    output_dir: str
    metrics: dict[str, Any]
    label_names: list[str]
    trainable_parameters: int
    total_parameters: int
    model: Any = field(repr=False, default=None)
    trainer: Any = field(repr=False, default=None)


def fine_tune(config: RecipeConfig, callbacks: list[TrainerCallback] | None = None) -> FineTuneResult:
    """Run one transfer experiment end to end and save a native-format model in ``output_dir``.

    ``callbacks``: extra transformers ``TrainerCallback``s (measurements, custom logging), run beside the strategy's.
    Ctrl-C / SIGTERM raise :class:`~hf_transfer.exceptions.Interrupted` and a full disk :class:`RunError`, each with
    one line saying where the run stopped and how to continue it.
    """
    started = time.perf_counter()
    config = resolve_config(config)
    training = config.training
    main_process = training.process_index == 0
    # The Trainer must neither push (it would create the repo and push checkpoints itself) nor pickle the token into
    # training_args.bin: take both out of its arguments; the finished run is pushed below, in one commit.
    hub = HubPushSettings.take_from(training)
    progress = RunProgress(training.output_dir, main_process)
    stopper = StopAtNextStep()
    with stop_on_signals(stopper, graceful=training.world_size == 1), faults_as_one_line(progress):
        progress.stage = "the output directory's lock and owner files"
        with OutputDirLock(training.output_dir) if main_process else contextlib.nullcontext():
            check_previous_run(training.output_dir, config.run.overwrite_output_dir, training.resume_from_checkpoint)
            readme = Path(training.output_dir, CARD_FILENAME)
            user_readme = _user_file(readme)
            training.resume_from_checkpoint = resolve_resume_checkpoint(
                training.resume_from_checkpoint, training.output_dir
            )
            progress.start_step = checkpoint_step(training.resume_from_checkpoint)
            progress.stage = "the prepared data and model (the frozen-feature cache)"
            prepared = prepare(config)
            stopper.raise_if_requested()  # swallowed while preparing: a closed-form head fires no Trainer callback
            identity = run_identity(prepared)
            if training.resume_from_checkpoint:
                check_same_run(training.resume_from_checkpoint, identity)
            extra = [*(callbacks or []), RecordRunIdentity(identity), stopper]  # the stop comes after the identity
            trainer = progress.trainer = build_transfer_trainer(prepared, callbacks=extra)
            progress.stage = "a checkpoint"
            metrics = _train_and_evaluate(prepared, trainer, progress)
            release_cached_forward(prepared.task.model)  # the saved and returned model runs on raw inputs
            prediction = metrics.pop("_prediction")
            stopper.raise_if_requested()  # swallowed since: a run asked to stop does not save as if finished
            if trainer.is_world_process_zero():
                progress.stage = "the final model"
                with _kept_as_it_is(readme, user_readme):  # save_pretrained may write a README.md (peft does)
                    _save_run(prepared, trainer, prediction, time.perf_counter() - started)
                progress.stage = "the model card"
                _write_card(training.output_dir, hub, keep_readme=user_readme is not None)
                if hub is not None:  # a failure raises PushError; the run stays on disk for `hf-transfer push`
                    push_to_hub(
                        training.output_dir, hub.repo_id, private=hub.private, revision=hub.revision, token=hub.token
                    )
    collapsed = collapse_warning(prediction, prepared.task.problem_type, prepared.task.label_names)
    if collapsed and trainer.is_world_process_zero():
        logger.warning(collapsed)
    return FineTuneResult(
        output_dir=os.path.abspath(training.output_dir),
        metrics=metrics,
        label_names=prepared.task.label_names,
        trainable_parameters=prepared.trainable_parameters,
        total_parameters=prepared.total_parameters,
        model=trainer.model,
        trainer=trainer,
    )


def run_identity(prepared: PreparedRun) -> dict[str, Any]:
    """What a checkpoint of this run must match to be resumed: task, base model, labels, problem type, strategy."""
    return {
        "task": prepared.config.task,
        "base_model": prepared.task.base_model_reference,
        "from_scratch": prepared.config.model.from_scratch,
        "label_names": prepared.task.label_names,
        "problem_type": prepared.task.problem_type,
        "strategy": prepared.strategy.name,
    }


def _train_and_evaluate(prepared: PreparedRun, trainer: Trainer, progress: RunProgress) -> dict[str, Any]:
    task, strategy, training = prepared.task, prepared.strategy, prepared.training
    # a head from the label descriptions (no example), or in closed form: one solve instead of the Trainer's steps
    train_metrics = zero_shot_head(prepared) or fit_cached_head(prepared)
    if train_metrics is None:
        train_metrics = dict(trainer.train(resume_from_checkpoint=training.resume_from_checkpoint).metrics)
        if task.with_pseudo_labels is not None and task.record.self_training is None:
            self_train_by_sgd(prepared, trainer, progress)
    progress.stage = "the run's metrics and state"
    train_metrics.update(strategy.after_train(trainer, prepared.context))  # e.g. WiSE-FT's interpolation sweep
    train_metrics.update(
        **(task.record.frozen_features.counts() if task.record.frozen_features else {}),
        train_samples=len(task.train_dataset),
        trainable_parameters=prepared.trainable_parameters,
        total_parameters=prepared.total_parameters,
        world_size=training.world_size,
        distributed_type=str(training.distributed_state.distributed_type),
    )
    train_metrics.update({f"skipped_{split}_images": n for split, n in task.record.skipped_images.items() if n})
    trainer.log_metrics("train", train_metrics)
    trainer.save_metrics("train", train_metrics)

    if len(task.eval_dataset) == 0:  # the small-data protocol: no validation split to score
        trainer.save_state()
        return {**train_metrics, "_prediction": None}
    # predict() = evaluate() plus the predictions, in one pass: the model card's confusion matrix needs them
    prediction = trainer.predict(task.eval_dataset, metric_key_prefix="eval")
    eval_metrics = dict(prediction.metrics)
    eval_metrics["eval_samples"] = len(task.eval_dataset)
    if task.extra_evaluation is not None:
        eval_metrics.update(task.extra_evaluation(prepared))
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()
    return {**train_metrics, **eval_metrics, "_prediction": prediction}


def self_train_by_sgd(prepared: PreparedRun, trainer: Trainer, progress: RunProgress) -> None:
    """Self-training rounds through the Trainer, for a body that trains by SGD (:mod:`.self_training`)."""
    task = prepared.task
    settings = settings_for(prepared.config.run, task.labels["train"], by_trainer=True)

    def on_round(number: int) -> None:
        progress.stage = f"self-training round {number}"

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, StopAtNextStep):  # a round writes no checkpoint: a stop keeps the labelled run's end
            callback.checkpoint = False

    report = self_train_with_trainer(prepared, trainer, settings, on_round)
    record(report, task.record)
    task.record.chosen_automatically_line = "; ".join(
        filter(None, [task.record.chosen_automatically_line, report.line()])
    )


def _save_run(prepared: PreparedRun, trainer: Trainer, prediction: Any, wall_time: float) -> None:
    """The model in its native format, its tokenizer, the resolved config with provenance and the predictions."""
    config, task, strategy, output_dir = (
        prepared.config,
        prepared.task,
        prepared.strategy,
        prepared.training.output_dir,
    )
    if not strategy.save(trainer.model, output_dir, prepared.context):  # adapters save themselves
        task.save(trainer.model, output_dir)
    if task.processing_class is not None:
        task.processing_class.save_pretrained(output_dir)
    resolved = prepared.resolved.to_dict()
    record = task.record
    record.from_scratch = config.model.from_scratch
    record.strategy = str(prepared.resolved.strategy)
    record.problem_type = task.problem_type
    record.label_names = task.label_names
    record.wall_time_s = round(wall_time, 1)
    resolved[RECORD_SECTION] = record.to_dict()
    Path(output_dir, CONFIG_FILENAME).write_text(json.dumps(resolved, indent=2, default=str))
    if prediction is not None:
        save_eval_predictions(output_dir, prediction, task.problem_type)


def _write_card(output_dir: str, hub: HubPushSettings | None, keep_readme: bool) -> None:
    """The model card as README.md; a README.md the user wrote (no generated marker) is kept, with one line."""
    card_repo = (hub.repo_id, hub.revision) if hub else (None, None)
    if keep_readme:
        logger.warning(
            "%s was not written by hf_transfer: it is kept as it is, and the run has no model card (move it away, "
            "then `hf-transfer push` writes one).",
            Path(output_dir, CARD_FILENAME),
        )
    write_model_card(output_dir, *card_repo, overwrite=not keep_readme)


def _user_file(path: Path) -> bytes | None:
    """The content of a README.md that a person wrote (it lacks the generated card's marker), else None."""
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return None if GENERATED_MARKER.encode() in content else content


@contextlib.contextmanager
def _kept_as_it_is(path: Path, content: bytes | None):
    """Put back a user's file (``content``, None: there was none) if a library's ``save_pretrained`` rewrote it."""
    try:
        yield
    finally:
        if content is not None and (not path.exists() or path.read_bytes() != content):
            path.write_bytes(content)


def collapse_warning(prediction, problem_type: str, label_names: list[str] | None) -> str | None:
    """One line when every validation prediction is the same class although the references are not: the model
    learnt the majority class, not the task."""
    import numpy as np

    if prediction is None or problem_type != SINGLE_LABEL or not label_names:
        return None
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    predicted, references = np.asarray(logits).argmax(axis=-1), np.asarray(prediction.label_ids)
    if len(set(predicted.tolist())) != 1 or len(set(references.tolist())) < 2:
        return None
    return (
        f"Every one of the {len(predicted)} validation predictions is {label_names[int(predicted[0])]!r}: the model "
        "collapsed to one class. Try --class_weights auto (if the classes are imbalanced), more steps "
        "(--num_train_epochs), another --learning_rate, or --strategy linear_probe for little data."
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
