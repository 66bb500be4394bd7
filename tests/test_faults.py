"""Faults during a run, as a user meets them: Ctrl-C, SIGTERM, a full disk, a folder of one's own as --output_dir, a
save schedule without its evaluation schedule. Each ends in one line on stderr (no traceback) that says where the run
stopped and how to continue, the exit status a shell expects, and nothing complete lost.

Every case the README's reliability paragraph lists is here. Signals and the full disk are tested on real processes
(signals) and a real small tmpfs (skipped where mounting is not permitted).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hf_transfer.exceptions import Interrupted, RunError
from hf_transfer.training.output_dir import OWNER_FILENAME
from hf_transfer.training.resume import RUN_IDENTITY_FILENAME, checkpoint_problem, last_valid_checkpoint

from .conftest import COLOURS, NEGATIVE, POSITIVE, REPO, make_image, write_imagefolder, write_text_csv

TINY = ["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32"]
LONG = [*TINY, "--num_train_epochs", "200", "--per_device_train_batch_size", "4", "--logging_steps", "1"]
RESUME = "--resume_from_checkpoint latest"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("faults") / "colours", per_class=8)


def _default_signal_handling() -> None:
    """In the child, before it starts: Ctrl-C and SIGTERM do what they do by default, as for a job a shell starts.
    An ignored signal stays ignored across exec, and Python then never raises KeyboardInterrupt; this worker's
    disposition may have been left ignored by an earlier in-process test (two full runs of 7 Dec: `accelerate launch`
    never took its own Ctrl-C, exit 1 not 130; a self-training round ran to its end)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


class Run:
    """A recipe run in its own process group (as a terminal's Ctrl-C reaches a whole pipeline), its output (stdout and
    stderr merged: the Trainer prints its logs on stdout) read as it comes: a test waits for training to start."""

    def __init__(self, argv: list[str], **env: str):
        executable = {"python": [sys.executable], "hf-transfer": [str(Path(sys.executable).parent / "hf-transfer")]}
        executable["accelerate"] = [str(Path(sys.executable).parent / "accelerate")]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.process = subprocess.Popen(
            [*executable[argv[0]], *argv[1:]], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, preexec_fn=_default_signal_handling,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self._reader.start()

    def wait_for(self, predicate, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while not predicate():
            assert self.process.poll() is None, "".join(self.lines)[-3000:]
            assert time.time() < deadline, "".join(self.lines)[-3000:]
            time.sleep(0.05)

    def training(self) -> bool:
        return any("'loss'" in line for line in self.lines)

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        status = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return status, "".join(self.lines)


def one_line(stderr: str, status: int, expected_status: int, *pieces: str) -> str:
    """The single ``error:`` line, after checking the status and that no traceback was printed."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert status == expected_status, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert len(errors) == 1, stderr[-3000:]
    print(f"exit {status}: {errors[0]}")  # the report of every case (pytest -s)
    for piece in pieces:
        assert piece in errors[0], errors[0]
    return errors[0]


def assert_released_and_tidy(out: Path) -> None:
    """The owner file is gone (the kernel lock goes with the process) and no half-written checkpoint is left."""
    assert not (out / OWNER_FILENAME).exists()
    for checkpoint in out.glob("checkpoint-*"):
        assert checkpoint_problem(checkpoint) is None and (checkpoint / RUN_IDENTITY_FILENAME).exists(), checkpoint


def test_sigterm_saves_a_checkpoint_at_the_next_step_and_the_run_continues(data, tmp_path):
    """What a scheduler or `timeout` sends: stop at the next step with a checkpoint, say where; resume from it."""
    out = tmp_path / "run"
    run = Run(
        ["python", "recipes/image_cls.py", *LONG, "--train_dir", str(data), "--output_dir", str(out)],
        HF_TRANSFER_STOP_GRACE_S="60",
    )  # a busy CI machine may need more than 3 s for a step and a save
    run.wait_for(run.training)
    run.process.send_signal(signal.SIGTERM)
    status, stderr = run.finish()
    line = one_line(stderr, status, 143, "Stopped by SIGTERM at step", RESUME)
    last = last_valid_checkpoint(out)
    assert last is not None and str(last) in line  # the step it stopped at, saved: nothing trained is lost
    assert_released_and_tidy(out)

    step = json.loads((last / "trainer_state.json").read_text())["global_step"]
    resumed = subprocess.run(
        [sys.executable, "recipes/image_cls.py", *LONG, "--train_dir", str(data), "--output_dir", str(out),
         "--resume_from_checkpoint", "latest", "--max_steps", str(step + 1)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == step + 1


def test_ctrl_c_twice_stops_at_once_in_one_line(data, tmp_path):
    """Ctrl-C reaches the whole process group; a second one does not wait for the checkpoint."""
    out = tmp_path / "run"
    run = Run(["hf-transfer", "train", *LONG, "--train_dir", str(data), "--output_dir", str(out)])
    run.wait_for(run.training)
    run.signal_group(signal.SIGINT)
    time.sleep(0.2)  # two signals in one instant reach Python's handler once
    run.signal_group(signal.SIGINT)
    status, stderr = run.finish()
    one_line(stderr, status, 130, "Stopped by SIGINT at step")
    assert_released_and_tidy(out)


def test_ctrl_c_in_a_self_training_round_keeps_the_labelled_runs_end(data, tmp_path):
    """A round through the Trainer writes no checkpoint: Ctrl-C in it stops at once, names the round and the
    labelled training's last checkpoint (still there: the round's own saving cannot rotate it out), and the resumed
    run runs the round again and finishes."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, name in enumerate(COLOURS[n] for n in ("red", "green", "blue") for _ in range(4)):
        make_image(name, seed=1000 + i).save(pool / f"{i:03d}.png")
    out = tmp_path / "run"
    argv = [*TINY, "--strategy", "full", "--max_steps", "40", "--per_device_train_batch_size", "4",
            "--logging_steps", "1", "--train_dir", str(data), "--unlabeled_dir", str(pool),
            "--pseudo_label_threshold", "0", "--output_dir", str(out)]  # fmt: skip
    run = Run(["python", "recipes/image_cls.py", *argv])
    run.wait_for(lambda: any("Self-training round 1:" in line for line in run.lines))
    run.signal_group(signal.SIGINT)
    status, stderr = run.finish()
    line = one_line(stderr, status, 130, "SIGINT in self-training round 1", "end of training on the labelled", RESUME)
    last = last_valid_checkpoint(out)
    assert last is not None and last.name == "checkpoint-40" and str(last) in line
    assert [c.name for c in out.glob("checkpoint-*")] == ["checkpoint-40"]
    assert_released_and_tidy(out)
    resumed = subprocess.run([sys.executable, "recipes/image_cls.py", *argv, "--resume_from_checkpoint", "latest"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]["self_training"]
    assert report["rounds_kept"] == 1 and sum(report["per_round"][1]["added"].values()) > 0


def test_ctrl_c_before_training_starts(data, tmp_path):
    """While the data and model are being prepared there is nothing to save: stop at once, leave nothing."""
    out = tmp_path / "run"
    run = Run(["python", "recipes/image_cls.py", *LONG, "--train_dir", str(data), "--output_dir", str(out)])
    run.wait_for(lambda: any("Class balance" in line or "Chosen automatically" in line for line in run.lines))
    run.signal_group(signal.SIGINT)
    status, stderr = run.finish()
    if "'loss'" in stderr:
        pytest.skip("training started before the signal arrived")
    one_line(stderr, status, 130, "Stopped by SIGINT", "no checkpoint was kept")
    assert not out.exists()  # the run created it and wrote nothing: it leaves no trace


@pytest.mark.slow
def test_ctrl_c_under_accelerate_launch_quiet(data, tmp_path):
    """The launcher gets Ctrl-C too and passes SIGTERM on: the toolkit's line is still the one and the last."""
    out = tmp_path / "run"
    run = Run(["accelerate", "launch", "-q", "recipes/image_cls.py", *LONG, "--train_dir", str(data),
               "--output_dir", str(out)])  # fmt: skip
    run.wait_for(run.training)
    run.signal_group(signal.SIGINT)
    status, stderr = run.finish()
    one_line(stderr, status, 130, "Stopped by SIGINT at step")
    assert_released_and_tidy(out)


# --- a full disk ---------------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 12 MB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, name: str) -> None:
    """Write until the disk is full (a run's own checkpoints may have filled it already: then opening fails)."""
    try:
        with open(disk / name, "wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    except OSError as err:
        assert err.errno == errno.ENOSPC


def test_a_full_disk_at_a_checkpoint_and_at_resume_is_one_line(data, small_disk):
    out = small_disk / "run"
    argv = [*LONG, "--train_dir", str(data), "--output_dir", str(out), "--save_strategy", "steps", "--save_steps", "3"]
    run = Run(["python", "recipes/image_cls.py", *argv])
    run.wait_for(lambda: (out / "checkpoint-3" / RUN_IDENTITY_FILENAME).exists())
    fill(small_disk, "filler")
    status, stderr = run.finish()
    kept = last_valid_checkpoint(out).name  # checkpoint-3, or a later one a loaded machine completed before the fill
    line = one_line(stderr, status, 1, "No space left on the device for checkpoint-", f"{kept};", RESUME)
    assert_released_and_tidy(out)  # the cut-short one is gone (its space freed)
    assert "Traceback" not in line

    fill(small_disk, "filler-2")  # still full: the resume cannot even write its owner file
    resumed = subprocess.run(
        [sys.executable, "recipes/image_cls.py", *argv, "--resume_from_checkpoint", "latest"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    one_line(resumed.stderr, resumed.returncode, 1, "No space left on the device for the output directory's lock")
    assert last_valid_checkpoint(out).name == kept  # the complete one survives both


def test_torch_and_safetensors_full_disk_errors_are_recognised(small_disk):
    """torch.save's zip writer and safetensors report a full disk without an errno (``unexpected pos``, ``file write
    failed``, ``StorageFull``): each is still a full disk."""
    import torch
    from safetensors.torch import save_file

    from hf_transfer.training.faults import is_disk_full

    fill(small_disk, "filler")
    big = {"w": torch.zeros(1 << 18)}
    for write in (lambda: torch.save(big, small_disk / "x.pt"), lambda: save_file(big, str(small_disk / "x.st"))):
        with pytest.raises(BaseException) as caught:
            write()
        assert is_disk_full(caught.value), repr(caught.value)
    assert not is_disk_full(RuntimeError("shape mismatch"))


@pytest.mark.parametrize("stage", ["the final model", "the model card"])
def test_a_full_disk_at_the_end_names_what_did_not_fit(tmp_path, stage):
    from hf_transfer.training.faults import RunProgress, faults_as_one_line

    checkpoint = tmp_path / "checkpoint-9"
    checkpoint.mkdir()
    progress = RunProgress(str(tmp_path), main_process=True, stage=stage)
    with pytest.raises(RunError) as caught, faults_as_one_line(progress):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "README.md"))
    assert f"for {stage}" in str(caught.value) and "README.md" in str(caught.value)
    assert "no checkpoint was kept" in str(caught.value)  # checkpoint-9 was incomplete: removed, not named
    assert not checkpoint.exists()


def test_a_signal_that_library_code_swallows_still_stops_the_run():
    """``datasets`` hashes a transform under a bare ``except:``: a Ctrl-C raised there is swallowed (a self-training
    round then ran to its end, exit 0). The request is kept, and the Trainer's next train begins by raising it; a
    signal after the last step's end (training, so it only asked for a checkpoint) is raised as training ends."""
    from hf_transfer.training.interrupts import StopAtNextStep, StopRequested, stop_on_signals

    def hash_a_transform() -> None:  # the shape of datasets.fingerprint.update_fingerprint
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, in the main thread
        except:  # noqa: E722
            pass

    stopper = StopAtNextStep()
    # what the process had: Python's default_int_handler, or SIG_IGN under a shell's `&` (POSIX starts background
    # jobs with SIGINT ignored, and Python then keeps it ignored)
    before = signal.getsignal(signal.SIGINT)
    with stop_on_signals(stopper, graceful=True):
        hash_a_transform()  # swallowed: nothing reaches here
        with pytest.raises(StopRequested, match="SIGINT"):
            stopper.on_train_begin(None, None, None)
    assert signal.getsignal(signal.SIGINT) is before  # put back as it was

    late = StopAtNextStep()
    with stop_on_signals(late, graceful=True):
        late.on_train_begin(None, None, None)
        os.kill(os.getpid(), signal.SIGTERM)  # during training: asks for a checkpoint after this step
        time.sleep(0.5)
        assert late.requested == signal.SIGTERM
        with pytest.raises(StopRequested, match="SIGTERM"):
            late.on_train_end(None, None, None)  # the step it waited for was the last: stop as training ends


def test_a_signal_that_ray_turns_into_a_bare_keyboard_interrupt_keeps_its_name():
    """Ray's blocking calls (``ray.wait``) catch the exception a signal handler raises and raise a bare
    ``KeyboardInterrupt`` instead: ``hf-transfer study --backend ray`` stopped by SIGTERM then said "Stopped by SIGINT
    before the run started" with 130 (seen by hand). The signal the command received is named, with its status."""
    from hf_transfer.cli import _signals_as_one_line

    def ray_wait() -> None:  # the shape of ray._raylet's check_signals
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None

    with pytest.raises(Interrupted) as stopped, _signals_as_one_line("study"):
        ray_wait()
    assert stopped.value.exit_status == 143 and "hf-transfer study stopped by SIGTERM" in str(stopped.value)
    assert "its finished cells are kept" in str(stopped.value)


@pytest.mark.parametrize(("signum", "status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_while_a_run_starts_ends_in_one_line(signum, status, monkeypatch, in_process, tmp_path):
    """The imports and the resolution take seconds before ``fine_tune`` installs its handlers: a Ctrl-C there printed
    an import's traceback (by hand, 2 and 6 s after starting a recipe), and SIGTERM ended it without a word."""
    from hf_transfer import cli, recipe

    def resolving(*args, **kwargs):  # the run is still resolving when the signal arrives
        os.kill(os.getpid(), getattr(signal, signum))
        time.sleep(5)

    monkeypatch.setattr(recipe, "parse_config", resolving)
    result = in_process(cli.run_recipe, "text-classification", ["--output_dir", str(tmp_path / "run")])
    line = one_line(result.stderr, result.returncode, status, f"the text-classification run stopped by {signum}")
    assert "nothing was saved: run the same command again" in line and not (tmp_path / "run").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


@pytest.mark.parametrize(
    ("argv", "where"),
    [
        (["--contrastive_epochs", "3"], r"in the contrastive phase, at step 2 of 3"),
        (["--strategy", "linear_probe", "--head_solver", "closed_form", "--per_device_eval_batch_size", "4"],
         r"while encoding the frozen train features \(4 of 1\d done\)"),
    ],
    ids=["contrastive-phase", "feature-cache"],
)  # fmt: skip
def test_ctrl_c_before_the_trainer_names_the_phase_it_stopped(argv, where, tmp_path, tiny_bert_dir, monkeypatch):
    """The body trains (the contrastive phase) and the cache encodes before the Trainer exists: a Ctrl-C there said
    "before training started" (pressed 40 s into a few-label text run). It names the phase and how far it got."""
    import re

    from hf_transfer import fine_tune, parse_config
    from hf_transfer.training import contrastive, prefix_cache

    calls = {"loss": 0, "batch": 0}

    def ctrl_c_at_the_second(what: str) -> None:
        calls[what] += 1
        if calls[what] == 2:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, in the main thread

    real_loss, real_tqdm = contrastive.pairwise_cosine_loss, prefix_cache.tqdm

    def loss(*args):
        ctrl_c_at_the_second("loss")
        return real_loss(*args)

    def batches(iterable, **kwargs):
        for batch in real_tqdm(iterable, **kwargs):
            ctrl_c_at_the_second("batch")
            yield batch

    monkeypatch.setattr(contrastive, "pairwise_cosine_loss", loss)
    monkeypatch.setattr(prefix_cache, "tqdm", batches)
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    out = tmp_path / "out"
    config = parse_config(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), *argv,
                           "--output_dir", str(out)], task="text-classification")  # fmt: skip
    with pytest.raises(Interrupted) as stopped:
        fine_tune(config)
    assert stopped.value.exit_status == 130
    assert re.fullmatch(f"Stopped by SIGINT {where}: no checkpoint was kept; run the same command again to start "
                        "over.", str(stopped.value)), str(stopped.value)  # fmt: skip
    assert not out.exists() or not any(out.iterdir())


def test_interrupted_is_a_run_error_and_a_keyboard_interrupt():
    err = Interrupted("Stopped by SIGTERM", exit_status=143)
    assert isinstance(err, RunError) and isinstance(err, KeyboardInterrupt) and err.exit_status == 143


# --- the output directory holds only what we wrote ----------------------------------------------------------------


def test_a_folder_of_ones_own_is_refused_and_with_overwrite_its_readme_is_kept(data, tmp_path, capsys, caplog):
    from hf_transfer.cli import run_recipe

    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("# my notes\n")
    (out / "notes.txt").write_text("keep me\n")
    argv = [*TINY, "--max_steps", "1", "--train_dir", str(data), "--output_dir", str(out)]
    assert run_recipe("image-classification", argv) == 2
    line = one_line(capsys.readouterr().err, 2, 2, "holds no hf_transfer run", "README.md", "--overwrite_output_dir")
    assert "notes.txt" in line and sorted(p.name for p in out.iterdir()) == ["README.md", "notes.txt"]

    assert run_recipe("image-classification", [*argv, "--overwrite_output_dir"]) == 0
    assert (out / "README.md").read_text() == "# my notes\n" and (out / "notes.txt").read_text() == "keep me\n"
    assert "hf_transfer did not write (README.md, notes.txt)" in caplog.text
    assert "README.md was not written by hf_transfer: it is kept" in caplog.text
    assert (out / "model.safetensors").exists()


def test_another_rank_checking_the_folder_during_the_main_process_write_probe_goes_on(tmp_path, monkeypatch):
    """In a distributed run every rank checks the output folder while the main process creates it and probes it with
    a temporary file: a rank that listed the probe refused the run as "not empty" (exit 2, the main process left at
    its first barrier: a flaky two-process test). Replayed here at the moment the probe exists."""
    import contextlib
    import tempfile

    from hf_transfer.training import output_dir

    out, real, listed = tmp_path / "run", tempfile.NamedTemporaryFile, []

    @contextlib.contextmanager
    def probe_while_rank_one_checks(**kwargs):
        with real(**kwargs) as probe:
            listed.extend(p.name for p in out.iterdir())
            output_dir.check_previous_run(out, overwrite=False, resume=None)  # rank 1, at this very moment
            yield probe

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", probe_while_rank_one_checks)
    with output_dir.OutputDirLock(out):  # the main process
        pass
    assert len(listed) == 1 and listed[0].startswith(output_dir.WRITE_TEST_PREFIX)  # rank 1 saw the probe, went on
    assert not out.exists()  # and the main process, which wrote nothing, left no folder behind


# --- the evaluation schedule follows the user's save schedule ------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--save_strategy", "steps", "--save_steps", "5"], ("steps", 5, "steps", 5)),
        (["--eval_strategy", "steps", "--eval_steps", "4"], ("steps", 4, "steps", 4)),
        (["--save_strategy", "steps", "--save_steps", "6", "--eval_strategy", "steps", "--eval_steps", "3"],
         ("steps", 3, "steps", 6)),
        ([], ("epoch", None, "epoch", 500)),
    ],
)  # fmt: skip
def test_the_recipes_schedule_follows_the_users(data, flags, expected):
    from hf_transfer.recipe import parse_config

    training = parse_config([*flags, "--train_dir", str(data)], resolve=False).training
    got = (training.eval_strategy.value, training.eval_steps, training.save_strategy.value, training.save_steps)
    assert got == expected
    assert "eval_strategy" not in training.set_by_user or "--eval_strategy" in flags  # still the recipe's choice


# --- resume: what is reproduced exactly ------------------------------------------------------------------------------

EXACT = [*TINY, "--train_val_split", "0.3", "--drop_rate", "0.3", "--num_train_epochs", "2",
         "--per_device_train_batch_size", "8",
         "--learning_rate", "0.01", "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "2",
         "--save_total_limit", "10", "--seed", "3"]  # fmt: skip


def losses(out: Path) -> list[tuple[int, float]]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]


@pytest.mark.slow
def test_resume_from_a_mid_epoch_checkpoint_is_exact_without_augmentation(data, tmp_path):
    """The README's statement: from a mid-epoch checkpoint, dropout on, augmentation off, every loss is the same as
    the uninterrupted run's (with augmentation on, only epoch-boundary checkpoints are exact: tests/test_resume.py)."""
    from hf_transfer.cli import run_recipe

    argv = [*EXACT, "--no_augment", "True", "--train_dir", str(data)]
    assert run_recipe("image-classification", [*argv, "--output_dir", str(tmp_path / "whole")]) == 0
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = [*argv, "--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint", "latest"]
    assert run_recipe("image-classification", resumed) == 0
    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole")
    whole, again = (json.loads((tmp_path / d / "all_results.json").read_text()) for d in ("whole", "resumed"))
    assert again["eval_loss"] == whole["eval_loss"]


def test_refusal_lines_read_cleanly(tmp_path):
    """Small things of the same lines: a question ends the push refusal without a stray full stop, and label names
    in the resume refusal appear as written, not JSON-escaped."""
    from hf_transfer.hub import IncompleteRunError, inspect_run
    from hf_transfer.training.resume import _short

    with pytest.raises(IncompleteRunError) as refused:
        inspect_run(tmp_path)
    assert str(refused.value).endswith("run?")
    assert _short(["zéro", "un"]) == '["zéro", "un"]'


@pytest.mark.parametrize(("command", "signum", "status", "after"), [
    ("push", "SIGTERM", 143, "commits all its files at once or none"),
    ("study", "SIGINT", 130, "finished cells are kept"),
    ("predict", "SIGTERM", 143, "nothing was saved"),
])  # fmt: skip
def test_other_commands_stopped_by_a_signal_end_in_one_line(command, signum, status, after, monkeypatch, in_process):
    """Ctrl-C or SIGTERM while `hf-transfer push / study / predict / rank / cache` works: exit 130 / 143 and one line
    saying what is left and how to go on (Python's own: a traceback, or for SIGTERM nothing at all)."""
    import dataclasses
    import signal
    import time

    from hf_transfer import cli

    def works(argv):  # the command is busy when the signal arrives
        os.kill(os.getpid(), getattr(signal, signum))
        time.sleep(5)
        return 0

    monkeypatch.setitem(cli.COMMANDS, command, dataclasses.replace(cli.COMMANDS[command], run=works))
    result = in_process(cli.main, [command])
    assert result.returncode == status
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert (
        len(lines) == 1
        and lines[0].startswith(f"error: hf-transfer {command} stopped by {signum}")
        and after in lines[0]
    )
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
