"""Zero-shot text classification from the label names: ``--train_samples_per_class 0``.

A sentence encoder maps a text and a short description of each label into one space, where the nearest description
is a prediction (the embedding-similarity baseline of zero-shot classification; e.g. Yin et al. 2019,
https://arxiv.org/abs/1909.00161). Here that is an ordinary linear head: class c's weights are the unit-length
mean-pooled embedding of its description, its bias 0, so the logits are ‖x‖·cos(x, description_c) and the argmax is the
nearest description. The saved model is the usual classifier: ``pipeline`` loads it, and it can be fine-tuned later.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import DataArguments
from ..exceptions import ConfigError
from ..models.pooled_text import MeanPooledClassifier
from ..models.prefix import split_model
from .run_types import PreparedRun

logger = logging.getLogger(__name__)


def label_descriptions(args: DataArguments, label_names: list[str]) -> list[str]:
    """Each label's text to embed, in label order: ``--label_descriptions`` (a JSON object label → description) or
    the label name, put into ``--label_template`` when given."""
    described = dict(zip(label_names, label_names))
    if args.label_descriptions:
        path = Path(args.label_descriptions)
        try:
            given = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"--label_descriptions {path}: cannot read it as JSON ({err}).") from None
        if not isinstance(given, dict) or not all(isinstance(v, str) and v.strip() for v in given.values()):
            raise ConfigError(f"--label_descriptions {path}: expected a JSON object of label → non-empty text.")
        unknown = sorted(set(given) - set(label_names))
        missing = [name for name in label_names if name not in given]
        if unknown or missing:
            raise ConfigError(
                f"--label_descriptions {path}: "
                + "; ".join(
                    part
                    for part in (
                        f"labels not in the data: {unknown}" if unknown else "",
                        f"no description for {missing}" if missing else "",
                    )
                    if part
                )
                + f". The data's labels are {label_names}."
            )
        described = {name: given[name] for name in label_names}
    template = args.label_template or "{}"
    return [template.format(described[name]) for name in label_names]


@torch.no_grad()
def embed_texts(prepared: PreparedRun, texts: list[str]) -> torch.Tensor:
    """The pooled features of ``texts`` from the run's body as it is now (the zero-shot head's weights; the label
    descriptions' features beside the cached ones of the labelled examples), in evaluation mode."""
    task = prepared.task
    device = next(task.model.parameters()).device
    inputs = task.processing_class(texts, padding=True, truncation=True, return_tensors="pt").to(device)
    was_training = task.model.training
    task.model.eval()
    try:
        return split_model(task.model, task.view, None).encode(dict(inputs))["features"]
    finally:
        task.model.train(was_training)


def zero_shot_head(prepared: PreparedRun) -> dict[str, float] | None:
    """Build the head from the label descriptions when the run has no training example; the metrics the Trainer's
    ``train`` would report, or None when there are examples to train on."""
    task = prepared.task
    if len(task.train_dataset) > 0:
        return None
    model = task.model
    if not isinstance(model, MeanPooledClassifier):
        raise ConfigError(
            "--train_samples_per_class 0 compares mean-pooled sentence embeddings: leave --pooling unset (or mean)."
        )
    started = time.perf_counter()
    texts = label_descriptions(prepared.config.data, task.label_names)
    model.eval()
    embeddings = embed_texts(prepared, texts)
    with torch.no_grad():
        model.classifier.weight.copy_(F.normalize(embeddings, dim=-1))
        model.classifier.bias.zero_()
    shown = ", ".join(f"{name!r}: {text!r}" for name, text in zip(task.label_names, texts))
    task.record.head_fit = (
        f"zero-shot: each class's weights are the unit-length mean-pooled embedding of its description ({shown}), "
        "so a text gets the class whose description is nearest (cosine)"
    )
    logger.info("Zero-shot head from %d label descriptions: %s.", len(texts), shown)
    return {"train_runtime": round(time.perf_counter() - started, 4), "zero_shot_classes": len(texts)}
