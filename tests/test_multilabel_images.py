"""Multi-label and regression image classification: the label conventions of every source, the loss the model computes,
and tiny end-to-end runs whose saved model scores its outputs the right way in timm, ``pipeline`` and the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from datasets import Image as ImageFeature

import hf_transfer as ht
from hf_transfer.config import (
    IMAGE_CLASSIFICATION,
    MULTI_LABEL,
    REGRESSION,
    SINGLE_LABEL,
    TEXT_CLASSIFICATION,
    DataArguments,
    ModelArguments,
)
from hf_transfer.data import collate_image_batch, load_image_data
from hf_transfer.data.builtin import with_data_presets
from hf_transfer.exceptions import DataError
from hf_transfer.inference import predict_images
from hf_transfer.models import build_image_model

from .conftest import make_image, run_command

CHANNELS = ("red", "green", "blue")
LABEL_NAMES = sorted(CHANNELS)


def resolved(task: str = IMAGE_CLASSIFICATION, **kwargs) -> DataArguments:
    """Loaders take resolved arguments: these are the presets and defaults ``resolve_config`` fills."""
    return with_data_presets(DataArguments(**kwargs), task)


def channel_squares(folder: Path, count: int, seed: int = 0) -> dict[str, list[str]]:
    """Squares whose labels are the colour channels they contain (black: none), cycling through all eight sets:
    learnable from the mean colour alone. Returns {file name: labels}."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for i in range(count):
        present = [name for bit, name in enumerate(CHANNELS) if (i % 8) >> bit & 1]
        colour = tuple(220 if name in present else 30 for name in CHANNELS)
        name = f"{seed + i:04d}.png"
        make_image(colour, seed=seed + i).save(folder / name)
        labels[name] = present
    return labels


def write_csv(path: Path, rows: list[tuple], header: tuple[str, ...] = ("image", "tags")) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def labelled_csv(tmp_path: Path, name: str, count: int, seed: int = 0) -> tuple[Path, dict[str, list[str]]]:
    """A csv of image paths and JSON-list labels, as ``json.dumps`` writes them."""
    labels = channel_squares(tmp_path / "images", count, seed)
    rows = [(f"images/{file}", json.dumps(tags)) for file, tags in labels.items()]
    return write_csv(tmp_path / name, rows), labels


def file_names(split) -> list[str]:
    return [Path(image["path"]).name for image in split.cast_column("image", ImageFeature(decode=False))["image"]]


def assert_multi_hot(data, expected: dict[str, list[str]]) -> None:
    assert data.problem_type == MULTI_LABEL and data.label_names == LABEL_NAMES
    for split in (data.train, data.validation):
        wanted = [[float(name in expected[file]) for name in LABEL_NAMES] for file in file_names(split)]
        assert split[data.label_column] == wanted


def test_csv_of_json_lists_is_multi_label(tmp_path):
    path, expected = labelled_csv(tmp_path, "tags.csv", 16)
    data = load_image_data(resolved(train_file=str(path), label_column_name="tags", train_val_split=0.25))
    assert_multi_hot(data, expected)
    assert (len(data.train), len(data.validation)) == (12, 4)


def test_jsonl_of_label_lists_is_multi_label(tmp_path):
    expected = channel_squares(tmp_path / "images", 12)
    path = tmp_path / "tags.jsonl"
    path.write_text("".join(json.dumps({"image": f"images/{f}", "tags": t}) + "\n" for f, t in expected.items()))
    validation, more = labelled_csv(tmp_path, "validation.csv", 8, seed=100)  # a csv validation split: same labels
    data = load_image_data(resolved(train_file=str(path), validation_file=str(validation), label_column_name="tags"))
    assert_multi_hot(data, {**expected, **more})


@pytest.mark.parametrize("metadata", ["metadata.csv", "metadata.jsonl"])
def test_imagefolder_metadata_with_a_list_column_is_multi_label(tmp_path, metadata):
    root = tmp_path / "folder"
    expected = channel_squares(root / "images", 16)
    if metadata == "metadata.csv":
        write_csv(
            root / metadata, [(f"images/{f}", json.dumps(t)) for f, t in expected.items()], ("file_name", "tags")
        )
    else:
        lines = (json.dumps({"file_name": f"images/{f}", "tags": t}) for f, t in expected.items())
        (root / metadata).write_text("\n".join(lines) + "\n")
    data = load_image_data(resolved(train_dir=str(root), label_column_name="tags", train_val_split=0.25))
    assert_multi_hot(data, expected)
    with pytest.raises(DataError, match=r"--label_column_name: column 'label' .* columns are \['image', 'tags'\]"):
        load_image_data(resolved(train_dir=str(root)))


def test_separated_labels_need_an_explicit_problem_type(tmp_path):
    expected = channel_squares(tmp_path / "images", 16)
    path = write_csv(tmp_path / "tags.csv", [(f"images/{f}", " | ".join(t)) for f, t in expected.items()])
    args = resolved(train_file=str(path), label_column_name="tags", train_val_split=0.25)
    assert_multi_hot(load_image_data(dataclasses.replace(args, problem_type=MULTI_LABEL)), expected)
    with pytest.raises(DataError, match="missing labels in"):  # read as one class per row, black has none
        load_image_data(args)


@pytest.mark.parametrize(
    ("cells", "validation_cells", "message"),
    [
        (
            ['["red"]', '["red", "green"'],
            None,
            r"Row 1 of the train data: multi-label column 'tags' holds .* not valid",
        ),
        (['["red"]', "green"], None, r"Column 'tags' mixes JSON label lists \(row 0\) with plain labels \(row 1"),
        (
            ['["red"]', '["red"]'],
            None,
            r"Multi-label column 'tags' holds fewer than two distinct labels \(\['red'\]\)",
        ),
        (['["red"]', "[7, [8]]"], None, r"Row 1 of the train data: .* each label must be a string or a number"),
        (
            ['["red"]', '["green"]'],
            ['["green"]', '["red", "purple"]'],
            r"Row 1 of the validation data: labels \['purple'\] in column 'tags' are outside the training label set",
        ),
    ],
)
def test_bad_label_cells_are_one_line_naming_row_and_column(tmp_path, cells, validation_cells, message):
    channel_squares(tmp_path / "images", 1)
    rows = [("images/0000.png", cell) for cell in cells * 2]
    args = {"train_file": str(write_csv(tmp_path / "train.csv", rows)), "label_column_name": "tags"}
    if validation_cells:
        validation = [("images/0000.png", cell) for cell in validation_cells]
        args["validation_file"] = str(write_csv(tmp_path / "validation.csv", validation))
    with pytest.raises(DataError, match=message) as err:
        load_image_data(resolved(**args, train_val_split=0.5))
    assert "\n" not in str(err.value)


def test_a_label_that_is_no_list_is_refused_with_an_explicit_problem_type(tmp_path):
    channel_squares(tmp_path / "images", 1)
    path = tmp_path / "tags.jsonl"
    path.write_text("".join(json.dumps({"image": "images/0000.png", "tags": i}) + "\n" for i in range(4)))
    with pytest.raises(DataError, match=r"Row 0 of the train data: multi-label column 'tags' must hold a list"):
        load_image_data(resolved(train_file=str(path), label_column_name="tags", problem_type=MULTI_LABEL))


def test_text_csv_of_json_lists_is_multi_label_through_the_same_code(tmp_path):
    from hf_transfer.data.text import load_text_data

    rows = [("a red and green square", json.dumps(["red", "green"])), ("a black square", "[]")] * 4
    path = write_csv(tmp_path / "texts.csv", [*rows, ("a blue square", '["blue"]')], ("text", "tags"))
    args = resolved(TEXT_CLASSIFICATION, train_file=str(path), label_column_name="tags", train_val_split=0.2)
    data = load_text_data(args)
    assert data.problem_type == MULTI_LABEL and data.label_names == LABEL_NAMES
    vectors = {
        text: vector for split in (data.train, data.validation) for text, vector in zip(split["text"], split["tags"])
    }
    assert vectors == {
        "a red and green square": [0.0, 1.0, 1.0],
        "a black square": [0.0] * 3,
        "a blue square": [1.0, 0.0, 0.0],
    }


def test_collator_gives_float_targets_for_multi_hot_and_regression_and_long_class_ids():
    pixels = torch.zeros(3, 4, 4)
    for labels, dtype in (
        ([1, 0], torch.long),
        ([[1.0, 0.0], [0.0, 0.0]], torch.float32),
        ([0.5, 2.0], torch.float32),
    ):
        batch = collate_image_batch([{"pixel_values": pixels, "labels": label} for label in labels])
        assert batch["labels"].dtype == dtype and batch["labels"].tolist() == labels


@pytest.mark.parametrize(
    ("problem_type", "names", "labels", "expected_loss"),
    [
        (MULTI_LABEL, LABEL_NAMES, [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], F.binary_cross_entropy_with_logits),
        (REGRESSION, ["brightness"], [0.25, 0.75], lambda logits, y: F.mse_loss(logits.squeeze(-1), y)),
        (SINGLE_LABEL, LABEL_NAMES, [2, 0], F.cross_entropy),
    ],
)
def test_the_model_computes_the_loss_of_its_problem_type(problem_type, names, labels, expected_loss):
    """The wrapper's loss comes from transformers' loss_function and config.problem_type: check it by hand."""
    model, _ = build_image_model(
        ModelArguments(model_name_or_path="test_efficientnet", from_scratch=True), names, problem_type=problem_type
    )
    torch.nn.init.normal_(model.timm_model.get_classifier().weight)  # the head starts at zero: make logits differ
    model.eval()
    examples = [{"pixel_values": torch.randn(3, 32, 32), "labels": label} for label in labels]
    batch = collate_image_batch(examples)
    outputs = model(**batch)
    assert outputs.logits.shape == (2, len(names))
    assert torch.allclose(outputs.loss, expected_loss(outputs.logits, batch["labels"]))


def square_pixels(path: Path, run_dir: Path) -> torch.Tensor:
    """An image as the saved model's own evaluation transform makes it."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{run_dir}", pretrained=True)
    transform = create_transform(**resolve_data_config({}, model=model), is_training=False)
    return transform(Image.open(path).convert("RGB")).unsqueeze(0)


TINY_RUN = [
    "--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--no_augment",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--logging_steps", "5",
    "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "False", "--seed", "0",
]  # fmt: skip


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory) -> dict:
    """`hf-transfer train` on coloured squares (csv of JSON lists), as a user runs it."""
    root = tmp_path_factory.mktemp("channels")
    train, _ = labelled_csv(root, "train.csv", 96)
    validation, expected = labelled_csv(root, "validation.csv", 24, seed=1000)
    out = root / "run"
    flags = ["--train_file", str(train), "--validation_file", str(validation), "--label_column_name", "tags"]
    extra = ["--num_train_epochs", "8", "--learning_rate", "5e-3", "--output_dir", str(out)]
    result = run_command(["hf-transfer", "train", *flags, *TINY_RUN, *extra])
    assert result.returncode == 0, result.stderr[-3000:]
    return {"out": out, "stdout": result.stdout, "images": root / "images", "expected": expected}


def test_multi_label_run_learns_and_reports_multi_label_metrics(multilabel_run):
    summary = json.loads(multilabel_run["stdout"][multilabel_run["stdout"].rindex('{\n  "output_dir"') :])
    assert {"eval_micro_f1", "eval_macro_f1", "eval_subset_accuracy"} <= set(summary)
    assert "eval_accuracy" not in summary
    assert summary["eval_micro_f1"] >= 0.8, summary  # chance (all-positive) is 0.67
    config = json.loads((multilabel_run["out"] / "config.json").read_text())
    assert config["problem_type"] == MULTI_LABEL and config["label_names"] == LABEL_NAMES
    provenance = json.loads((multilabel_run["out"] / "hf_transfer_config.json").read_text())["provenance"]
    assert provenance["problem_type"] == MULTI_LABEL and provenance["label_names"] == LABEL_NAMES


def test_saved_multi_label_model_scores_each_label_with_a_sigmoid(multilabel_run):
    """timm loads it with its label names; pipeline() and `hf-transfer predict` give each label its own sigmoid."""
    import timm
    from transformers import pipeline

    out, image = multilabel_run["out"], multilabel_run["images"] / "1003.png"  # red + green
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == LABEL_NAMES
    with torch.no_grad():
        expected = dict(zip(LABEL_NAMES, model(square_pixels(image, out)).sigmoid()[0].tolist()))
    scores = {p["label"]: p["score"] for p in pipeline("image-classification", model=str(out))(str(image), top_k=3)}
    assert scores == pytest.approx(expected, abs=1e-4)
    assert sum(scores.values()) != pytest.approx(1.0, abs=1e-3)  # not a softmax
    assert scores["red"] > 0.5 and scores["green"] > 0.5 and scores["blue"] < 0.5
    predicted = run_command(["hf-transfer", "predict", "--model", str(out), "--top_k", "3", str(image)])
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    printed = {line.split()[1]: float(line.split()[0]) for line in predicted.stdout.strip().splitlines()[1:]}
    assert printed == pytest.approx(expected, abs=1e-3)


def test_regression_run_reports_mse_and_pearson_and_saves_a_value_model(tmp_path):
    from transformers import pipeline

    from hf_transfer.hub.artifacts import inspect_run

    (tmp_path / "images").mkdir()
    rows = []
    for i in range(48):
        level = (i % 6) / 5
        make_image((int(30 + 190 * level),) * 3, seed=i).save(tmp_path / "images" / f"{i}.png")
        rows.append((f"images/{i}.png", level))
    path = write_csv(tmp_path / "grey.csv", rows, ("image", "brightness"))
    config = ht.RecipeConfig(
        model=ModelArguments(model_name_or_path="test_efficientnet", from_scratch=True),
        data=DataArguments(
            train_file=str(path), label_column_name="brightness", image_size=32, no_augment=True, train_val_split=0.25
        ),
        training=ht.default_training_arguments(
            output_dir=str(tmp_path / "out"),
            num_train_epochs=6,
            learning_rate=5e-3,
            per_device_train_batch_size=8,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
        ),
    )
    result = ht.fine_tune(config)
    assert {"eval_mse", "eval_pearsonr"} <= set(result.metrics) and result.label_names is None
    assert result.model.config.problem_type == REGRESSION and result.model.config.num_labels == 1
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["problem_type"] == REGRESSION and saved["label_names"] == ["brightness"]
    inspect_run(tmp_path / "out")  # a complete run, ready to push
    image = tmp_path / "images" / "5.png"
    predicted = pipeline("image-classification", model=result.output_dir)(str(image))
    with torch.no_grad():
        value = result.model.eval()(pixel_values=square_pixels(image, tmp_path / "out")).logits.item()
    assert predicted == [{"label": "brightness", "score": pytest.approx(value, abs=1e-4)}]  # the raw value
    assert predict_images(result.output_dir, [str(image)]) == [[("brightness", pytest.approx(value, abs=1e-4))]]
