"""Predict with a saved model directory: the same code path a user without hf_transfer would take (timm only)."""

from __future__ import annotations

from pathlib import Path

import torch


@torch.no_grad()
def predict_images(model_dir: str, image_paths: list[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (label, probability) per image, using the preprocessing recorded in the model's own config."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    from .data.transforms import to_model_mode

    if not Path(model_dir, "config.json").is_file():
        raise FileNotFoundError(f"--model: {model_dir!r} is not a saved model directory (no config.json).")
    model = timm.create_model(f"local-dir:{Path(model_dir).resolve()}", pretrained=True).eval()
    label_names = model.pretrained_cfg.get("label_names") or [str(i) for i in range(model.num_classes)]
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config, is_training=False)
    results = []
    for path in image_paths:
        try:
            image = Image.open(path)
            image.load()
        except (OSError, ValueError) as err:
            raise ValueError(f"Cannot read image {path!r}: {err}") from err
        pixels = transform(to_model_mode(image, data_config["input_size"][0])).unsqueeze(0)
        probs = model(pixels).softmax(dim=-1)[0]
        values, indices = probs.topk(min(top_k, probs.numel()))
        results.append([(label_names[int(i)], float(v)) for v, i in zip(values, indices)])
    return results
