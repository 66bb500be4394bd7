"""`hf-transfer study`: nested samples, one evaluation set, scratch cells, resumable cells, a report whose numbers
are the cells' own, and one-line errors for bad study flags."""

from __future__ import annotations

import contextlib
import json
import statistics
from pathlib import Path

import pytest

import hf_transfer as ht
from hf_transfer.data.labels import ROW_COLUMN, sample_per_class, with_row_ids
from hf_transfer.exceptions import DataError

from .conftest import write_imagefolder


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A local timm checkpoint standing in for a pretrained one (a trained head of another size is replaced)."""
    import timm

    from hf_transfer.hub import save_timm_model

    folder = tmp_path_factory.mktemp("pretrained") / "tiny"
    return save_timm_model(timm.create_model("test_efficientnet", num_classes=5), folder, list("abcde"))


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=12)


def test_per_class_samples_are_nested_and_stratified():
    from datasets import ClassLabel, Dataset, Features

    labels = [i % 3 for i in range(60)]
    split = with_row_ids(
        Dataset.from_dict({"label": labels}, features=Features({"label": ClassLabel(names=["a", "b", "c"])}))
    )
    rows = {size: set(sample_per_class(split, "label", size, seed=7)[ROW_COLUMN]) for size in (2, 5, 20)}
    assert rows[2] < rows[5] < rows[20]  # nested for one seed
    for size, chosen in rows.items():
        assert [sum(labels[r] == c for r in chosen) for c in range(3)] == [size] * 3  # stratified
    assert rows[5] != set(sample_per_class(split, "label", 5, seed=8)[ROW_COLUMN])  # another seed, another sample
    with pytest.raises(DataError, match="class 'a' has only 20"):
        sample_per_class(split, "label", 21, seed=7)


def study_config(tmp_path: Path, data: Path, model: Path) -> ht.RecipeConfig:
    return ht.RecipeConfig(
        model=ht.ModelArguments(model_name_or_path=str(model)),
        data=ht.DataArguments(train_dir=str(data), image_size=32),
        training=ht.default_training_arguments(output_dir=str(tmp_path / "study"), per_device_eval_batch_size=16),
    )


def text_study_config(tmp_path: Path, model: Path, pooling: str | None = None, **data) -> ht.RecipeConfig:
    """A text study of 4-step cells with the tiny BERT, in ``tmp_path / "study"``."""
    text = "text-classification"
    return ht.RecipeConfig(
        task=text,
        model=ht.ModelArguments(model_name_or_path=str(model), pooling=pooling),
        data=ht.DataArguments(**data),
        training=ht.default_training_arguments(text, output_dir=str(tmp_path / "study"), max_steps=4),
    )


def finished_study(tmp_path: Path, config, settings) -> tuple[Path, dict[str, dict]]:
    """Run a study in ``tmp_path / "study"`` (the configs' output dir), check no cell failed; its folder and cells."""
    summary = ht.study(config, settings)
    assert not summary.failed_cells
    study_dir = tmp_path / "study"
    return study_dir, cell_files(study_dir)


def cell_files(study_dir: Path) -> dict[str, dict]:
    return {
        str(path.parent.relative_to(study_dir)): {
            "results": json.loads(path.read_text()),
            "provenance": json.loads((path.parent / "hf_transfer_config.json").read_text())["provenance"],
        }
        for path in study_dir.glob("runs/*/*/*/all_results.json")
    }


@pytest.mark.slow
def test_study_cells_report_and_resume(tmp_path, colours, pretrained):
    # two cells at a time, one thread each: the cells' interpreter starts, not their few steps, are most of the time
    settings = ht.StudySettings(strategies=["linear_probe"], train_sizes=[3, None], seeds=[0, 1], max_parallel=2)
    study_dir, cells = finished_study(tmp_path, study_config(tmp_path, colours, pretrained), settings)
    assert len(cells) == 8  # 2 sizes × 2 seeds × (linear_probe + scratch)
    assert sum("/scratch/" in name for name in cells) == 4
    assert len({cell["provenance"]["eval_set"] for cell in cells.values()}) == 1  # one evaluation set for all
    assert {cell["results"]["train_samples"] for name, cell in cells.items() if "/n3-" in name} == {9}

    report = json.loads((study_dir / "study.json").read_text())
    group = next(g for g in report["summary"]["groups"] if g["label"] == "linear_probe" and g["size"] == 3)
    accuracies = [cells[f"runs/tiny/linear_probe/n3-s{seed}"]["results"]["eval_accuracy"] for seed in (0, 1)]
    assert group["metric_mean"] == pytest.approx(statistics.mean(accuracies))  # the report's numbers are the cells'
    for name in ("README.md", "study.csv", "data_efficiency.png", "accuracy_vs_time.png"):
        assert (study_dir / name).is_file(), name
    from hf_transfer.hub import write_model_card  # what `hf-transfer push` of a cell renders

    card = write_model_card(study_dir / "runs/tiny/linear_probe/n3-s0", "me/tiny", overwrite=True).read_text()
    assert "## How this configuration was chosen" in card and "| `scratch` |" in card

    # the same command again runs nothing; a cell killed half-way (no results yet) is redone, and only it
    stamps = {name: (study_dir / name / "all_results.json").stat().st_mtime_ns for name in cells}
    (study_dir / "runs/tiny/linear_probe/n3-s1/all_results.json").unlink()
    ht.study(study_config(tmp_path, colours, pretrained), settings)
    after = {name: (study_dir / name / "all_results.json").stat().st_mtime_ns for name in cells}
    redone = {name for name in cells if after[name] != stamps[name]}
    assert redone == {"runs/tiny/linear_probe/n3-s1"}
    assert f"ran 1 of the {len(cells)} cells" in (study_dir / "README.md").read_text()  # this invocation's share


def test_a_setting_goes_to_the_cells_whose_strategy_reads_it(tmp_path, colours, pretrained):
    from hf_transfer.recipe import parse_config
    from hf_transfer.study.cells import Cell, cell_config
    from hf_transfer.study.study import resolve_base

    argv = ["--train_dir", str(colours), "--model_name_or_path", str(pretrained), "--freeze_blocks", "1"]
    base = resolve_base(parse_config([*argv, "--output_dir", str(tmp_path)], resolve=False), ["full", "freeze"])
    freeze, full = (cell_config(base, Cell(str(pretrained), s, False, 3, 0), tmp_path, 0) for s in ("freeze", "full"))
    assert freeze.strategy.freeze_blocks == 1 and full.strategy.freeze_blocks is None


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--train_sizes", "3,99"], "class 'blue' has only"),
        (["--strategies", "full,linear_probe", "--lora_r", "4"], "--lora_r is read by none of --strategies"),
        (["--strategies", "linear_prob"], "linear_probe"),
        (["--train_sizes", "3,3"], "twice"),
        (["--train_sizes", "0,3"], "zero-shot from the label names) is for text-classification only"),
    ],
)
def test_bad_study_flags_are_one_line(tmp_path, colours, pretrained, flags, message, in_process):
    from hf_transfer.cli import main  # in-process: what the `hf-transfer` script calls, without an interpreter start

    argv = ["study", "--train_dir", str(colours), "--model_name_or_path", str(pretrained)]
    result = in_process(main, [*argv, "--output_dir", str(tmp_path / "s"), *flags])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_ray_backend_runs_cells_on_actors(tmp_path, colours, pretrained):
    """Real cells on a local Ray instance; then, on the same instance, an actor killed outright fails only its cell
    and the study's other cells still run (on a new actor)."""
    ray = pytest.importorskip("ray")
    import signal

    from hf_transfer.study.ray_backend import run_on_ray

    from .test_study_workers import Job, sleep_or_die

    sigterm = signal.getsignal(signal.SIGTERM)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # sets a SIGTERM handler of its own
    signal.signal(signal.SIGTERM, sigterm)  # as the study's connect() does (tested below)
    try:
        settings = ht.StudySettings(
            strategies=["linear_probe"], train_sizes=[3], seeds=[0], scratch=False, backend="ray"
        )
        summary = ht.study(study_config(tmp_path, colours, pretrained), settings)
        jobs = [Job("a", seconds=1.0), Job("b", dies=True), Job("c"), Job("d")]
        outcomes = run_on_ray(jobs, 1, None, lambda outcome: None, sleep_or_die)
    finally:
        ray.shutdown()
    assert not summary.failed_cells
    assert (tmp_path / "study" / "runs/tiny/linear_probe/n3-s0/all_results.json").is_file()
    errors = {o.cell: o.error for o in outcomes}
    assert errors.pop("b").startswith("its Ray worker died") and errors == {"a": None, "c": None, "d": None}


def test_connecting_to_ray_keeps_the_studys_sigterm_handler():
    """``ray.init`` sets a SIGTERM handler of its own in the driver (``sys.exit(15)``: no line, status 15); connecting
    puts back the one the process had (``hf-transfer study``'s: one line, 143). A stand-in for Ray does what
    ``ray._private.worker.init`` does to the signal, without starting a cluster."""
    import signal
    import sys

    from hf_transfer.study.ray_backend import connect

    class RayLike:
        def init(self, **kwargs):
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))

    def the_studys(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, the_studys)
    try:
        connect(RayLike(), None)
        assert signal.getsignal(signal.SIGTERM) is the_studys
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_second_study_on_the_same_directory_is_refused_in_one_line(tmp_path, colours, pretrained):
    from hf_transfer.exceptions import ConfigError
    from hf_transfer.training.output_dir import OutputDirLock

    config = study_config(tmp_path, colours, pretrained)
    settings = ht.StudySettings(strategies=["linear_probe"], train_sizes=[3], seeds=[0], scratch=False)
    with OutputDirLock(config.training.output_dir):  # the first study, still running
        with pytest.raises(ConfigError, match="in use by another run") as refused:
            ht.study(config, settings)
    assert "\n" not in str(refused.value)
    assert not list((tmp_path / "study").glob("runs/*"))  # the second ran no cell


def test_a_cell_worker_dies_with_its_study(tmp_path):
    """`kill -9` of the study's process takes its workers with it (they would run on as orphans and collide with the
    next run): the mechanism the local backend arms in every worker, seen from a grandchild of the test."""
    import os
    import signal
    import subprocess
    import sys
    import time

    armed = tmp_path / "armed"
    worker = (
        "import os, sys, time\nfrom pathlib import Path\nfrom hf_transfer.study.runner import die_with_parent\n"
        "die_with_parent(int(sys.argv[1]))\nPath(sys.argv[2]).write_text(str(os.getpid()))\ntime.sleep(120)\n"
    )
    parent = (
        "import os, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {worker!r}, str(os.getpid()), {str(armed)!r}])\n"
        "time.sleep(120)\n"
    )
    study = subprocess.Popen([sys.executable, "-c", parent], start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (armed.exists() and armed.read_text()):
            time.sleep(0.2)
        worker_pid = int(armed.read_text())
        os.kill(study.pid, signal.SIGKILL)
        study.wait()
        for _ in range(50):
            try:
                state = open(f"/proc/{worker_pid}/stat").read().split()[2]
            except OSError:
                break
            if state == "Z":  # killed, waiting to be reaped
                break
            time.sleep(0.2)
        else:
            pytest.fail("the worker outlived its study")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(study.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_warm_worker_gives_a_cell_what_a_fresh_process_gives(tmp_path, colours, pretrained):
    """Two cells in one warm worker, then the second alone in a fresh one: the same metrics, bit for bit. The first
    cell (full fine-tuning) changes what a run can change in its process; the second is a from-scratch cell, whose
    initialisation and data order depend only on its own seed."""
    from hf_transfer.study.cells import Cell, cell_config, config_digest
    from hf_transfer.study.runner import CellJob, run_cells
    from hf_transfer.study.study import resolve_base

    config = study_config(tmp_path, colours, pretrained)
    config.training = ht.default_training_arguments(output_dir=str(tmp_path / "study"), max_steps=6)
    base = resolve_base(config, ["full"])
    first, second = Cell(str(pretrained), "full", False, 3, 0), Cell(str(pretrained), "full", True, 3, 1)

    def jobs(study_dir: Path, cells: list[Cell]) -> list[CellJob]:
        configs = [cell_config(base, cell, study_dir, 0) for cell in cells]
        return [CellJob(c, cfg, str(study_dir), config_digest(cfg), 1) for c, cfg in zip(cells, configs)]

    warm = run_cells(jobs(tmp_path / "warm", [first, second]), max_parallel=1)
    cold = run_cells(jobs(tmp_path / "cold", [second]), max_parallel=1)
    assert not [o.error for o in warm + cold if o.error]
    assert warm[0].worker == warm[1].worker != cold[0].worker  # the second cell ran in the first one's process

    def metrics(study_dir: Path) -> dict:
        results = json.loads((study_dir / second.run_dir() / "all_results.json").read_text())
        return {k: v for k, v in results.items() if k.startswith(("eval_", "train_loss")) and "runtime" not in k
                and "per_second" not in k}  # fmt: skip

    assert metrics(tmp_path / "warm") == metrics(tmp_path / "cold") != {}
    assert "cell.log" in {p.name for p in (tmp_path / "warm" / second.run_dir()).iterdir()}


@pytest.mark.slow
def test_size_zero_is_one_zero_shot_cell_per_model(tmp_path, sentiment_csv, tiny_bert_dir, monkeypatch):
    """``--train_sizes 0,…``: one cell per model whatever the strategies and seeds (it trains nothing), its head
    built from the label descriptions, and its own row at size 0 in the report."""
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text(json.dumps({"pos": "a good film", "neg": "a bad film"}))
    config = text_study_config(
        tmp_path, tiny_bert_dir, train_file=str(sentiment_csv), label_descriptions=str(descriptions)
    )
    settings = ht.StudySettings(strategies=["linear_probe", "full"], train_sizes=[0, 4], seeds=[0, 1], scratch=False)
    study_dir, cells = finished_study(tmp_path, config, settings)
    assert sorted(cells) == [
        "runs/tiny-bert0/full/n4-s0",
        "runs/tiny-bert0/full/n4-s1",
        "runs/tiny-bert0/linear_probe/n4-s0",
        "runs/tiny-bert0/linear_probe/n4-s1",
        "runs/tiny-bert0/zero_shot/n0-s0",
    ]
    zero_shot = cells["runs/tiny-bert0/zero_shot/n0-s0"]
    assert zero_shot["results"]["train_samples"] == 0 and zero_shot["provenance"]["head_fit"].startswith("zero-shot")
    assert len({cell["provenance"]["eval_set"] for cell in cells.values()}) == 1  # the same held-out set
    report = json.loads((study_dir / "study.json").read_text())
    group = next(g for g in report["summary"]["groups"] if g["label"] == "zero_shot")
    assert group["size"] == 0 and group["metric_mean"] == zero_shot["results"]["eval_accuracy"]
    assert "| `zero_shot` |" in (study_dir / "README.md").read_text()


def test_a_study_with_unlabelled_examples_shows_each_strategy_with_and_without(
    tmp_path, sentiment_csv, tiny_bert_dir, monkeypatch
):
    """``--unlabeled_file``: every strategy that can self-train runs with and without the same pool (a
    ``+unlabelled`` twin), the others without; the report gives what the pool buys beside what transfer buys."""
    from .conftest import write_text_csv

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    texts = [(f"{word} film number {i}",) for i in range(5) for word in ("great", "awful")]
    pool = write_text_csv(tmp_path / "pool.csv", texts, ("text",))
    config = text_study_config(
        tmp_path, tiny_bert_dir, "mean", train_file=str(sentiment_csv), unlabeled_file=str(pool)
    )
    settings = ht.StudySettings(strategies=["linear_probe", "full"], train_sizes=[4], seeds=[0], scratch=True)
    study_dir, cells = finished_study(tmp_path, config, settings)
    assert sorted(cells) == [
        "runs/tiny-bert0/full/n4-s0",
        "runs/tiny-bert0/linear_probe+unlabelled/n4-s0",
        "runs/tiny-bert0/linear_probe/n4-s0",
        "runs/tiny-bert0/scratch/n4-s0",
    ]
    self_trained = cells["runs/tiny-bert0/linear_probe+unlabelled/n4-s0"]["provenance"]["self_training"]
    assert self_trained["unlabeled_examples"] == 10
    for name in ("linear_probe", "full", "scratch"):
        assert cells[f"runs/tiny-bert0/{name}/n4-s0"]["provenance"]["self_training"] is None
    readme = (study_dir / "README.md").read_text()
    section = readme.split("## What the unlabelled examples buy")[1]
    assert "| `linear_probe+unlabelled` |" in section and "(transfer: " in section
    with pytest.raises(ht.ConfigError, match="none of --strategies full can self-train"):
        ht.study(config, ht.StudySettings(strategies=["full"], train_sizes=[4], seeds=[0], scratch=False))
