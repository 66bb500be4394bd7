"""`accelerate launch --multi_gpu --num_processes 2` on a GPU-less machine: two gloo CPU processes, same numbers.

The loss and gradient norm a recipe reports must not depend on the number of processes: the Trainer would otherwise
multiply the loss by the process count for models whose forward takes **kwargs (BERT does). The one-process reference
runs in this process, through the `run_recipe` call each recipe script is (an `accelerate launch` of one process adds
nothing to compare, and two interpreter starts per test); the two-process run is a real `accelerate launch`.
"""

import json

import pytest

from .conftest import NEGATIVE, POSITIVE, run_command, write_imagefolder, write_text_csv

COMMON = [
    "--max_steps", "2", "--logging_steps", "1", "--eval_strategy", "no", "--load_best_model_at_end", "False",
    "--save_strategy", "no", "--seed", "3", "--learning_rate", "0.01", "--warmup_steps", "0",
]  # fmt: skip


TASKS = {
    "recipes/image_cls.py": "image-classification",
    "recipes/text_cls.py": "text-classification",
    "recipes/multimodal_cls.py": "multimodal-classification",
}


def failure(stderr: str) -> str:
    """Every rank's own ``error:`` line, then the output's tail: with several processes the tail is often another
    rank's traceback of the barrier it was left waiting at, and the cause is cut off."""
    return "\n".join([*[line for line in stderr.splitlines() if "error:" in line][:10], "...", stderr[-3000:]])


def launch(
    tmp_path, recipe: str, args: list[str], processes: int, per_device_batch: int, in_process
) -> tuple[list[dict], dict]:
    """One process: ``run_recipe`` here (what the script calls); more: ``accelerate launch --multi_gpu``."""
    from hf_transfer.cli import run_recipe

    out = tmp_path / f"np{processes}"
    argv = [*COMMON, *args, "--output_dir", str(out), "--per_device_train_batch_size", str(per_device_batch)]
    if processes == 1:
        result = in_process(run_recipe, TASKS[recipe], argv)
    else:
        result = run_command(["accelerate", "launch", "--multi_gpu", "--num_processes", str(processes), recipe, *argv])
    assert result.returncode == 0, failure(result.stderr)
    history = [e for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    return history, json.loads((out / "train_results.json").read_text())


def assert_same_numbers(tmp_path, recipe: str, args: list[str], in_process) -> None:
    single, single_info = launch(tmp_path, recipe, args, 1, per_device_batch=8, in_process=in_process)
    double, double_info = launch(tmp_path, recipe, args, 2, per_device_batch=4, in_process=in_process)  # global 8
    assert single_info["world_size"] == 1
    # a silent fallback to two independent single-process runs would report world size 1 / DistributedType.NO
    assert double_info["world_size"] == 2 and double_info["distributed_type"] == "DistributedType.MULTI_CPU"
    assert len(single) == len(double) == 2
    for one, two in zip(single, double):
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    # the second step's loss depends on the first update, i.e. on the gradients averaged across processes
    assert single[1]["loss"] != pytest.approx(single[0]["loss"], rel=1e-3)


@pytest.mark.slow
def test_image_recipe_two_processes_match_one(tmp_path, in_process):
    data = write_imagefolder(tmp_path / "colours", per_class=10)
    args = [
        "--model_name_or_path",
        "test_convnext",
        "--from_scratch",
        "--train_dir",
        str(data),
        "--train_val_split",
        "0.15",
    ]
    assert_same_numbers(tmp_path, "recipes/image_cls.py", [*args, "--image_size", "32", "--no_augment"], in_process)


@pytest.mark.slow
def test_text_recipe_two_processes_match_one(tmp_path, tiny_bert_dir, in_process):
    rows = [(text, "pos") for text in POSITIVE * 5] + [(text, "neg") for text in NEGATIVE * 5]
    data = write_text_csv(tmp_path / "reviews.csv", rows, ("text", "label"))
    # the tiny BERT has no dropout: each process would otherwise draw its own masks, and no numbers could match
    # full fine-tuning and a hold-out, given: 20 reviews per class would otherwise get the contrastive default
    args = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--strategy", "full",
            "--train_val_split", "0.15"]  # fmt: skip
    assert_same_numbers(tmp_path, "recipes/text_cls.py", args, in_process)


@pytest.mark.slow
def test_multimodal_recipe_two_processes_match_one(tmp_path, tiny_bert_dir, in_process):
    """Frozen image tower on cached features, trainable text tower (through the DDP reducer). The uncached frozen
    tower's forward is the single-process code (``test_frozen_image_tower_and_batch_norm_statistics_do_not_move``);
    its two-process run (~50 s of CI) was dropped for the 20-minute CI target."""
    args = [
        "--image_model_name_or_path", "test_efficientnet", "--image_from_scratch", "--image_size", "32",
        "--text_model_name_or_path", str(tiny_bert_dir), "--max_train_samples", "32", "--max_eval_samples", "8",
        "--image_strategy", "linear_probe", "--text_strategy", "full", "--fusion_dropout", "0",
        "--cache_frozen_features", "True",
    ]  # fmt: skip
    assert_same_numbers(tmp_path, "recipes/multimodal_cls.py", args, in_process)


@pytest.mark.slow
def test_two_processes_encode_the_frozen_features_once(tmp_path):
    """Rank 0 encodes and stores; rank 1 waits (main_process_first) and reads: each example is encoded once."""
    import re

    data = write_imagefolder(tmp_path / "colours", per_class=10)
    out = tmp_path / "np2"
    result = run_command(
        [
            "accelerate",
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "recipes/image_cls.py",
            *COMMON,
            "--model_name_or_path",
            "test_convnext",
            "--from_scratch",
            "--train_dir",
            str(data),
            "--train_val_split",
            "0.15",
            "--image_size",
            "32",
            "--strategy",
            "linear_probe",
            "--per_device_train_batch_size",
            "4",
            "--output_dir",
            str(out),
        ],  # fmt: skip
        HF_TRANSFER_CACHE=str(tmp_path / "cache"),
    )
    assert result.returncode == 0, failure(result.stderr)
    reports = re.findall(r"Frozen-feature cache \(.*?\): train (\d+) encoded, (\d+) reused", result.stderr)
    assert sorted(reports) == [("0", "25"), ("25", "0")], result.stderr[-3000:]  # one rank encoded, one reused
    assert json.loads((out / "train_results.json").read_text())["world_size"] == 2
