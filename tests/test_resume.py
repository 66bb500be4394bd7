"""Resume: the last complete checkpoint, a refusal when the run changed, and the same result as never stopping."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_transfer.exceptions import ConfigError
from hf_transfer.training.resume import (
    RUN_IDENTITY_FILENAME,
    check_same_run,
    last_valid_checkpoint,
    resolve_resume_checkpoint,
)

from .conftest import REPO, write_imagefolder


def fake_checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    """A checkpoint folder as the Trainer writes it; an incomplete one is cut off mid-save."""
    import torch
    from safetensors.torch import save_file

    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(4)}, str(folder / "model.safetensors"))
    torch.save({"state": {}}, folder / "optimizer.pt")
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    else:
        data = (folder / "optimizer.pt").read_bytes()
        (folder / "optimizer.pt").write_bytes(data[: len(data) // 2])
    return folder


def test_latest_skips_an_incomplete_checkpoint_with_a_warning(tmp_path, caplog):
    fake_checkpoint(tmp_path, 10)
    fake_checkpoint(tmp_path, 20)
    fake_checkpoint(tmp_path, 30, complete=False)
    assert last_valid_checkpoint(tmp_path).name == "checkpoint-20"
    assert "checkpoint-30" in caplog.text
    assert resolve_resume_checkpoint("True", tmp_path).endswith("checkpoint-20")
    assert resolve_resume_checkpoint("latest", tmp_path).endswith("checkpoint-20")
    assert resolve_resume_checkpoint(None, tmp_path) is None and resolve_resume_checkpoint("False", tmp_path) is None


def test_a_truncated_weights_file_makes_a_checkpoint_incomplete(tmp_path):
    folder = fake_checkpoint(tmp_path, 5)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-3])
    assert last_valid_checkpoint(tmp_path) is None
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        resolve_resume_checkpoint(True, tmp_path)
    with pytest.raises(ConfigError, match="incomplete"):
        resolve_resume_checkpoint(str(folder), tmp_path)


def test_a_resume_with_other_labels_is_refused_naming_them(tmp_path):
    folder = fake_checkpoint(tmp_path, 5)
    identity = {"task": "image-classification", "base_model": "m", "label_names": ["cat", "dog"], "strategy": "full"}
    (folder / RUN_IDENTITY_FILENAME).write_text(json.dumps(identity))
    check_same_run(str(folder), identity)  # the same run: fine
    with pytest.raises(ConfigError, match=r"label names changed \(checkpoint: \[\"cat\", \"dog\"\], now: .*ant"):
        check_same_run(str(folder), {**identity, "label_names": ["ant", "bee"]})
    with pytest.raises(ConfigError, match="base model changed"):
        check_same_run(str(folder), {**identity, "base_model": "other"})


ARGS = [
    "--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "48", "--drop_rate", "0.3",
    "--num_train_epochs", "4", "--per_device_train_batch_size", "4", "--learning_rate", "0.01",
    "--save_total_limit", "2", "--logging_steps", "1", "--seed", "5", "--train_val_split", "0.3",
]  # fmt: skip


def recipe_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return [*ARGS, "--train_dir", str(data), "--output_dir", str(out), *extra]


def recipe(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "recipes/image_cls.py", *recipe_argv(data, out, *extra)]


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, in_process):
    """SIGKILL after the first checkpoint, resume with 'latest': the same final step and metrics as a run that never
    stopped, with augmentation (the default random crops) and dropout on."""
    from hf_transfer.cli import run_recipe

    data = write_imagefolder(tmp_path / "colours", per_class=16)
    # the uninterrupted reference in this process (what the script calls: one interpreter start fewer); the killed
    # and the resumed run are real processes
    whole = in_process(run_recipe, "image-classification", recipe_argv(data, tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(recipe(data, killed), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list(killed.glob(f"checkpoint-*/{RUN_IDENTITY_FILENAME}")) and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "all_results.json").exists(), "the run finished before it could be killed"
    for partial in [p for p in killed.glob("checkpoint-*") if not (p / "trainer_state.json").exists()]:
        shutil.rmtree(partial)  # what a kill mid-save leaves is skipped anyway; keep the comparison simple

    resumed = subprocess.run(
        recipe(data, killed, "--resume_from_checkpoint", "latest"), cwd=REPO, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "whole" / "all_results.json").read_text())
    got = json.loads((killed / "all_results.json").read_text())
    state = json.loads((killed / "trainer_state.json").read_text())
    assert state["global_step"] == json.loads((tmp_path / "whole" / "trainer_state.json").read_text())["global_step"]
    for key in ("eval_loss", "eval_accuracy", "eval_macro_f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
