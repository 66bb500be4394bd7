"""The recipe as users run it: `accelerate launch recipes/image_cls.py ...`, then the saved model and the CLI."""

import json
from pathlib import Path

import pytest

from .conftest import run_command, write_imagefolder

SMOKE = [
    "--max_steps", "2", "--max_train_samples", "64", "--max_eval_samples", "32", "--image_size", "32",
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--eval_strategy", "steps",
    "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1",
]  # fmt: skip


@pytest.mark.slow
def test_recipe_smoke_under_accelerate_launch(tmp_path, in_process):
    """Default model (real Lite0 weights) and default data (built-in MNIST), two steps, then the outputs."""
    out = tmp_path / "run"
    result = run_command(["accelerate", "launch", "recipes/image_cls.py", "--output_dir", str(out), *SMOKE])
    assert result.returncode == 0, result.stderr[-3000:]
    for name in (
        "config.json",
        "model.safetensors",
        "all_results.json",
        "eval_results.json",
        "hf_transfer_config.json",
        "eval_predictions.json",
    ):
        assert (out / name).is_file(), name
    results = json.loads((out / "all_results.json").read_text())
    predictions = json.loads((out / "eval_predictions.json").read_text())
    assert len(predictions["predictions"]) == len(predictions["references"]) == results["eval_samples"] == 32
    assert 0.0 <= results["eval_accuracy"] <= 1.0 and "eval_top5_accuracy" in results  # 10 classes → top-5
    resolved = json.loads((out / "hf_transfer_config.json").read_text())
    assert resolved["provenance"]["base_model"] == "builtin:efficientnet_lite0"
    assert resolved["training"]["max_steps"] == 2

    import timm

    model = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert model.pretrained_cfg["label_names"] == [str(d) for d in range(10)]
    assert tuple(model.pretrained_cfg["input_size"]) == (3, 32, 32)

    from hf_transfer.data import builtin_dataset_dir

    digit = next((builtin_dataset_dir("builtin:mnist") / "7").glob("*.png"))
    # `hf-transfer predict` and the second run in-process (main, run_recipe): their launchers' own exit paths are
    # tested in test_cli.py and test_bad_inputs.py
    from hf_transfer.cli import main, run_recipe

    predicted = in_process(main, ["predict", "--model", str(out), "--top_k", "3", str(digit)])
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = predicted.stdout.strip().splitlines()
    assert lines[0] == str(digit) and len(lines) == 4
    assert all(line.split()[-1] in [str(d) for d in range(10)] for line in lines[1:])

    # a second run into the same directory is refused, and nothing already saved is touched
    before = (out / "model.safetensors").read_bytes()
    again = in_process(run_recipe, "image-classification", ["--output_dir", str(out), *SMOKE])
    assert again.returncode == 2 and "--overwrite_output_dir" in again.stderr
    assert (out / "model.safetensors").read_bytes() == before


def test_cli_train_on_an_imagefolder_with_a_tiny_model(tmp_path):
    data = write_imagefolder(tmp_path / "colours", per_class=6)
    out = tmp_path / "run"
    result = run_command(
        [
            "hf-transfer",
            "train",
            "--model_name_or_path",
            "test_convnext",
            "--from_scratch",
            "--train_dir",
            str(data),
            "--output_dir",
            str(out),
            "--strategy",
            "freeze",
            "--freeze_blocks",
            "2",
            "--num_train_epochs",
            "1",
            "--per_device_train_batch_size",
            "4",
            "--image_size",
            "32",
        ]  # fmt: skip
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "config.json").read_text())["label_names"] == ["blue", "green", "red"]
    assert "eval_top5_accuracy" not in json.loads((out / "all_results.json").read_text())  # only 3 classes


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train_dir", "/no/such/dir"], "--train_dir: directory '/no/such/dir' does not exist"),
        (["--model_name_or_path", "efficientnet_lite_0"], "efficientnet_lite0"),
        (["--strategy", "freeze", "--freeze_blocks", "999"], "exceeds the 16 blocks"),
        (["--label_column_name", "digit"], "columns are ['image', 'label']"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, argv, message, in_process):
    from hf_transfer.cli import main  # in-process: `hf-transfer train` without an interpreter start per case

    result = in_process(main, ["train", "--output_dir", str(tmp_path / "o"), *argv, "--max_steps", "1"])
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (Path(tmp_path / "o") / "model.safetensors").exists()


def test_predict_with_a_missing_model_dir(tmp_path, in_process):
    from hf_transfer.cli import main

    result = in_process(main, ["predict", "--model", str(tmp_path), "x.png"])
    assert result.returncode == 2 and "no config.json" in result.stderr


def test_early_stopping_stops_when_the_metric_stops_improving(tmp_path):
    import hf_transfer as ht

    data = write_imagefolder(tmp_path / "colours", per_class=6)
    result = ht.fine_tune(
        ht.RecipeConfig(
            model=ht.ModelArguments(model_name_or_path="test_convnext", from_scratch=True),
            data=ht.DataArguments(train_dir=str(data), image_size=32, train_val_split=0.3),
            run=ht.RunArguments(early_stopping_patience=2),
            training=ht.default_training_arguments(
                output_dir=str(tmp_path / "out"),
                learning_rate=0.0,  # nothing can improve: evaluation 1 sets the best, 2 and 3 exhaust the patience
                num_train_epochs=20,
                per_device_train_batch_size=8,
                metric_for_best_model="loss",
            ),
        )
    )
    evaluations = [e for e in result.trainer.state.log_history if "eval_loss" in e and "epoch" in e]
    assert result.trainer.state.epoch == 3 and len(evaluations) >= 3
