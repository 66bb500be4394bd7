"""Predict with a saved model: image classifiers through timm alone (what a user without hf_transfer would do), and
image+text fusion models through transformers' Auto API once hf_transfer has registered their classes.

Images are decoded as training decodes them: by ``datasets``' ``Image`` feature (EXIF orientation applied), then
:func:`~hf_transfer.data.transforms.to_model_mode` and the model's evaluation transform, so a prediction sees the
pixels the model was evaluated on. Not ``pipeline("image-classification")``: its ``load_image`` converts with
``convert("RGB")``, which turns transparent pixels black (training composites them on white) and cannot feed a
1-channel model.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .config import FUSION_MODEL_TYPE, MULTI_LABEL, REGRESSION

if TYPE_CHECKING:
    from PIL import Image as PILImage


@torch.no_grad()
def predict_images(model_dir: str, image_paths: list[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (label, score) per image, using the preprocessing recorded in the model's own config.

    The score follows the model's ``problem_type``: a softmax probability; for a multi-label model each label's own
    sigmoid probability (they need not sum to 1); for a regression model the predicted value."""
    import timm
    from timm.data import create_transform, resolve_data_config

    config_path = Path(model_dir, "config.json")
    if Path(model_dir, "trainer_state.json").is_file() and Path(model_dir).name.startswith("checkpoint-"):
        raise ValueError(
            f"--model: {model_dir!r} is a Trainer checkpoint (for --resume_from_checkpoint), not a saved model; "
            f"predict with the run's own directory ({str(Path(model_dir).parent)!r}), which holds the final model."
        )
    if not config_path.is_file():
        raise FileNotFoundError(f"--model: {model_dir!r} is not a saved model directory (no config.json).")
    if "architecture" not in _read_config(config_path):  # a timm config, not a transformers one
        raise ValueError(
            f"--model: {model_dir!r} is not an image model (its config.json has no timm 'architecture'); a text "
            "model predicts with transformers: pipeline('text-classification', model=...)."
        )
    try:
        model = timm.create_model(f"local-dir:{Path(model_dir).resolve()}", pretrained=True).eval()
    except (pickle.UnpicklingError, RuntimeError) as err:  # torch.load(weights_only=True) refused non-tensors
        if "weights_only" not in str(err) and not isinstance(err, pickle.UnpicklingError):
            raise
        reason = str(err).splitlines()[0]
        raise ValueError(
            f"--model: {model_dir!r} holds weights that are not plain tensors; not loaded ({reason})"
        ) from None
    problem_type = _read_config(config_path).get("problem_type")  # timm ignores it
    label_names = model.pretrained_cfg.get("label_names") or [str(i) for i in range(model.num_classes)]
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config, is_training=False)
    results = []
    for path in image_paths:
        scores = output_scores(model(image_inputs([path], transform, data_config["input_size"][0])), problem_type)[0]
        values, indices = scores.topk(min(top_k, scores.numel()))
        results.append([(label_names[int(i)], float(v)) for v, i in zip(values, indices)])
    return results


def image_inputs(images: Sequence[Any], transform: Any, channels: int) -> torch.Tensor:
    """A batch of pixel values from image files or PIL images, preprocessed as the evaluation during training was."""
    from .data.transforms import to_model_mode

    return torch.stack([transform(to_model_mode(open_image(image), channels)) for image in images])


def output_scores(logits: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """What a classifier's outputs mean, as transformers' pipelines read ``problem_type``."""
    if problem_type == MULTI_LABEL:
        return logits.sigmoid()
    if problem_type == REGRESSION:
        return logits
    return logits.softmax(dim=-1)


def _read_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--model: {path} is not valid JSON ({err}).") from None
    return config if isinstance(config, dict) else {}


def is_fusion_model_dir(model_dir: str | os.PathLike[str]) -> bool:
    """Whether a local directory holds an hf_transfer fusion (image+text) model rather than, say, a timm one."""
    try:
        config = json.loads(Path(model_dir, "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == FUSION_MODEL_TYPE


@torch.no_grad()
def predict_multimodal(
    model_dir_or_repo: str | os.PathLike[str],
    images: Sequence[str | os.PathLike[str] | PILImage.Image] | None,
    texts: Sequence[str] | Sequence[tuple[str, str]] | None,
    top_k: int = 5,
    *,
    revision: str | None = None,
    batch_size: int = 32,
) -> list[list[tuple[str, float]]]:
    """Top-k (label, probability) per example (``images[i]`` with ``texts[i]``) of a fusion model: a run's directory
    or a Hub repo.

    Preprocessing is the run's own, so predictions match its evaluation: the image tower's evaluation transform from
    ``config.image_tower["data_config"]``, and the saved tokenizer truncating at the run's ``max_seq_length`` (read
    from ``hf_transfer_config.json`` when present). Texts are strings, or ``(first, second)`` tuples for a model
    trained on text pairs. A modality the model lacks takes ``None``.
    """
    from transformers import AutoConfig, AutoTokenizer

    from .models.fusion import FusionConfig, FusionForClassification

    if images is not None and texts is not None and len(images) != len(texts):
        raise ValueError(
            f"Got {len(images)} image(s) but {len(texts)} text(s): each example needs one image and one text."
        )
    source, hub = str(model_dir_or_repo), {"revision": revision}
    try:
        config = AutoConfig.from_pretrained(source, **hub)
    except ValueError as err:  # a config.json without a model_type transformers knows (e.g. a timm model)
        raise ValueError(f"{source!r} is not an hf_transfer image+text model ({err}).") from None
    if not isinstance(config, FusionConfig):
        raise ValueError(
            f"{source!r} is a {config.model_type!r} model, not an hf_transfer image+text model "
            f"(model_type {FusionConfig.model_type!r})."
        )
    provenance = _run_provenance(source, revision)
    text_pairs = _check_inputs(config, images, texts, provenance.get("text_columns"))
    count = len(images if images is not None else texts or [])
    if count == 0:
        return []
    model = FusionForClassification.from_pretrained(source, config=config, **hub).eval()
    transform = channels = tokenizer = max_length = None
    if "image" in config.modalities:
        from timm.data import create_transform

        data_config = config.image_tower["data_config"]
        transform = create_transform(**data_config, is_training=False)
        channels = data_config["input_size"][0]
    if "text" in config.modalities:
        tokenizer = AutoTokenizer.from_pretrained(source, **hub)
        max_length = (
            config.text_tower.get("max_seq_length") or provenance.get("max_seq_length") or tokenizer.model_max_length
        )
    results = []
    for start in range(0, count, batch_size):
        inputs: dict[str, Any] = {}
        if transform is not None:
            inputs["pixel_values"] = image_inputs(images[start : start + batch_size], transform, channels)
        if tokenizer is not None:
            batch_texts = list(texts[start : start + batch_size])
            columns = list(zip(*batch_texts)) if text_pairs else [batch_texts]
            encoded = tokenizer(*[list(c) for c in columns], padding=True, truncation=True, max_length=max_length)
            inputs |= {key: torch.tensor(value) for key, value in encoded.items()}
        probabilities = model(**inputs).logits.softmax(dim=-1)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
        for row_values, row_indices in zip(values.tolist(), indices.tolist()):
            results.append([(config.id2label[i], p) for p, i in zip(row_values, row_indices)])
    return results


def _check_inputs(
    config: Any,
    images: Sequence[Any] | None,
    texts: Sequence[Any] | None,
    text_columns: list[str] | None,
) -> bool:
    """Every modality the model has gets an input, and none it lacks; returns whether the texts are pairs."""
    for modality, given in (("image", images), ("text", texts)):
        if modality in config.modalities and given is None:
            raise ValueError(f"This model reads {modality}s too: pass one {modality} per example.")
        if modality not in config.modalities and given is not None:
            raise ValueError(f"This model has no {modality} tower: pass {modality}s=None.")
    if not texts:
        return False
    pairs = [isinstance(text, (tuple, list)) for text in texts]
    if any(pairs) and not all(pairs):
        raise ValueError("Mix of single texts and text pairs: pass all strings, or all (first, second) tuples.")
    if all(pairs) and any(len(text) != 2 for text in texts):
        raise ValueError("A text pair is a (first, second) tuple of two strings.")
    trained_on = len(text_columns) if text_columns else None
    if trained_on == 2 and not all(pairs):
        raise ValueError(f"This model was trained on text pairs {tuple(text_columns)}: pass (first, second) tuples.")
    if trained_on == 1 and all(pairs):
        raise ValueError(f"This model was trained on single texts ({text_columns[0]!r}), not on pairs.")
    return all(pairs)


def _run_provenance(source: str, revision: str | None) -> dict[str, Any]:
    """The run's recorded provenance (``max_seq_length``, ``text_columns``), or nothing for a bare model."""
    path = Path(source, "hf_transfer_config.json")
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = Path(hf_hub_download(source, "hf_transfer_config.json", revision=revision))
        except (EntryNotFoundError, OSError):  # not pushed with it, or not reachable: the model alone still works
            return {}
    try:
        provenance = json.loads(path.read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        return {}
    return provenance if isinstance(provenance, dict) else {}


def open_image(image: Any) -> PILImage.Image:
    """An image file decoded by the decoder training uses (``datasets.Image``: EXIF orientation applied). A PIL image
    is turned by its EXIF orientation too (as transformers' ``load_image`` does): one from ``PIL.Image.open`` still
    carries the tag, one that training's decoder produced no longer does, so it is never turned twice."""
    from datasets import Image as ImageFeature
    from PIL import Image, ImageOps

    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    try:
        return ImageFeature().decode_example({"path": os.fspath(image), "bytes": None})
    except (OSError, ValueError) as err:
        raise ValueError(f"Cannot read image {str(image)!r}: {err}") from err
