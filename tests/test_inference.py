"""Predict decodes an image as training does: a JPEG rotated by its EXIF orientation tag gives the same pixels, the
same model inputs and the same prediction on both paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from timm.models._hub import save_for_hf

from hf_transfer.config import DataArguments
from hf_transfer.data import build_image_transforms, image_transform_fn, load_image_data, resolve_image_data_config
from hf_transfer.data.builtin import apply_data_presets
from hf_transfer.inference import image_inputs, open_image, predict_images

ORIENTATION = 0x0112  # the EXIF tag; 6 says: display the stored pixels turned 90 degrees clockwise


def rotated_jpeg(path: Path) -> Image.Image:
    """A 40x24 (landscape) JPEG tagged orientation 6, so it displays as 24x40 (portrait); returns the stored pixels."""
    stored = np.zeros((24, 40, 3), np.uint8)
    stored[..., 0] = np.linspace(0, 255, 40, dtype=np.uint8)[None, :]  # a left-to-right red ramp
    stored[:12, :, 1] = 200  # a green top half: no rotation or flip maps the image onto itself
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    return Image.open(path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An imagefolder of two classes; the rotated JPEG is its only image that is not square."""
    root = tmp_path / "photos"
    rotated_jpeg(root / "tall" / "rotated.jpg")
    for name, grey in [("tall/plain.jpg", 90), ("flat/0.jpg", 0), ("flat/1.jpg", 40)]:
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((30, 30, 3), grey, np.uint8)).save(root / name)
    return root


def test_predict_sees_the_pixels_training_sees(folder, tmp_path):
    args = DataArguments(train_dir=str(folder), validation_dir=str(folder))
    apply_data_presets(args)
    data = load_image_data(args)
    position = next(i for i, image in enumerate(data.validation["image"]) if image.size != (30, 30))
    trained_on = data.validation[position]["image"]
    path = folder / "tall" / "rotated.jpg"
    assert Image.open(path).size == (40, 24) and trained_on.size == (24, 40)  # training applied the EXIF rotation
    assert np.array_equal(np.asarray(open_image(path)), np.asarray(trained_on))
    assert np.array_equal(np.asarray(open_image(trained_on)), np.asarray(trained_on))  # never turned twice

    model = timm.create_model(
        "test_efficientnet", pretrained=False, num_classes=2, pretrained_cfg_overlay={"input_size": (3, 48, 48)}
    ).eval()
    save_for_hf(model, tmp_path / "model")
    data_config = resolve_image_data_config(model)
    _, eval_tf = build_image_transforms(data_config, args)
    evaluated = data.validation.with_transform(image_transform_fn(eval_tf, "image", "label"))[position]["pixel_values"]
    predicted = image_inputs([path], eval_tf, 3)[0]
    assert torch.equal(predicted, evaluated)
    stored = Image.fromarray(np.asarray(Image.open(path)))  # the stored pixels, the EXIF tag dropped
    assert stored.size == (40, 24) and open_image(Image.open(path)).size == (24, 40)  # PIL inputs are turned too
    not_rotated = image_inputs([stored], eval_tf, 3)[0]
    assert not torch.allclose(not_rotated, evaluated, atol=0.1)  # the rotation changes what the model sees

    with torch.no_grad():
        expected = model(evaluated[None]).softmax(-1)[0]
    ((label, score), _) = predict_images(str(tmp_path / "model"), [str(path)], top_k=2)[0]
    assert score == pytest.approx(float(expected.max()), abs=1e-6) and label == str(int(expected.argmax()))
