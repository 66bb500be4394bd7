"""`hf-transfer`'s own parsing: every subcommand through HfArgumentParser dataclasses, every user error one line with
exit status 2 (checked in-process through `cli.main`), the old flag spellings, and light imports for the light
subcommands (checked in a fresh interpreter through `sys.modules`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_transfer import cli

from .conftest import REPO, run_command, write_imagefolder


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=4)


@pytest.fixture(scope="module")
def yaml_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("yaml")
    files = {
        "wrong_type": "learning_rate: fast\n",
        "wrong_choice": "pooling: avg\n",
        "study_list": "strategies: [linear_probe, full]\nseeds: '0'\n",
        "text_task": "task: text-classification\n",
    }
    for name, text in files.items():
        (root / f"{name}.yaml").write_text(text)
    return {name: root / f"{name}.yaml" for name in files}


def one_line(capsys, argv: list[str]) -> str:
    """Run ``hf-transfer argv`` in-process; it must fail with status 2 and exactly one ``error:`` line."""
    status = cli.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1, err[-3000:]
    assert "Traceback" not in err and "usage:" not in err, err[-3000:]
    return errors[0]


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "give a command"),
        (["trian"], "Did you mean 'train'"),
        (["train", "--learning_rate", "fast"], "--learning_rate: invalid float value: 'fast'"),
        (["train", "--learing_rate", "1"], "did you mean --learning_rate"),
        (["train", "--task", "nosuch"], "--task: unknown task 'nosuch'"),
        (["predict", "--top_k", "abc", "x.png"], "--top_k: invalid int value"),
        (["predict", "x.png"], "--model"),
        (["push", "somewhere"], "--repo_id"),
        (["cache", "lst"], "invalid choice: 'lst'"),
        (["strategies", "--bogus"], "unknown flag --bogus"),
        (["rank", "--models", "a", "--train_size", "abc"], "--train_size"),
        (["rank", "--models", "a", "--train_size", "0"], "--train_size"),
        (["rank", "--train_size", "8"], "--models"),
        (["study", "--scratch", "maybe"], "--scratch"),
        (["study", "--max_parallel", "two"], "--max_parallel: invalid int value"),
        (["study", "--train_sizes", "8,x"], "--train_sizes: 'x' is not a whole number"),
    ],
)
def test_user_errors_are_one_line(capsys, argv, expected):
    assert expected in one_line(capsys, argv)


@pytest.mark.parametrize(
    "name, expected",
    [("wrong_type", "learning_rate: 'fast' is not a number"), ("wrong_choice", "pooling: 'avg' is not one of")],
)
@pytest.mark.parametrize("command", ["train", "study"])
def test_a_wrong_yaml_value_names_the_file_and_key(capsys, yaml_files, name, expected, command):
    line = one_line(capsys, [command, "--config", str(yaml_files[name])])
    assert str(yaml_files[name]) in line and expected in line


@pytest.mark.parametrize("command", ["rank", "study"])
def test_every_model_reference_is_checked_before_any_work(capsys, tmp_path, colours, command):
    out = tmp_path / "out"
    argv = [command, "--models", "test_efficientnet,nosuch", "--train_dir", str(colours), "--output_dir", str(out)]
    assert "--models: 'nosuch' is not a timm model" in one_line(capsys, argv)
    assert not out.exists()  # nothing ranked, loaded or trained


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)


def test_subcommand_flags_keep_their_spellings():
    parse = cli._parse
    for argv in (["run", "--repo-id", "me/x", "--private"], ["--private", "run", "--repo_id", "me/x"]):
        push = parse(cli.PushArguments, "push", argv)
        assert (push.output_dir, push.repo_id, push.private) == ("run", "me/x", True)
    argv = ["--model", "m", "--text", "a q", "1.png", "2.png", "--text", "b"]  # --text once, or once per image
    predict = parse(cli.PredictArguments, "predict", argv)
    assert predict.images == ["1.png", "2.png"] and predict.text == ["a q", "b"] and predict.top_k == 5
    assert parse(cli.CacheArguments, "cache", ["clear", "ab", "cd"]).digests == ["ab", "cd"]
    assert parse(cli.CacheArguments, "cache", ["list"]).digests == []
    assert parse(cli.StrategiesArguments, "strategies", ["--markdown"]).markdown is True


def test_study_and_rank_flags_parse_with_the_recipe_flags(yaml_files):
    from hf_transfer.recipe import parse_arguments
    from hf_transfer.study.rank import RankArguments
    from hf_transfer.study.study import StudyArguments

    base, (study,) = parse_arguments(["--scratch", "false", "--seed", "7"], task=None, commands=(StudyArguments,))
    settings = study.settings()
    assert settings.scratch is False and settings.train_sizes == [8, 32, 128, None] and base.training.seed == 7
    assert base.training.output_dir == "outputs/study_image"  # the study's own default
    _, (study,) = parse_arguments(["--config", str(yaml_files["study_list"])], task=None, commands=(StudyArguments,))
    assert study.settings().strategies == ["linear_probe", "full"] and study.settings().seeds == [0]
    base, (rank,) = parse_arguments(["--models", "a,b", "--train_size", "8"], task=None, commands=(RankArguments,))
    assert rank.model_list() == ["a", "b"] and rank.size() == 8 and base.training.seed == 0  # the sample seed
    base, _ = parse_arguments(["--config", str(yaml_files["text_task"])], task=None, commands=(StudyArguments,))
    assert base.task == "text-classification" and base.training.output_dir == "outputs/study_text"


LIGHT = ("torch", "transformers", "timm", "peft", "datasets")


def modules_after(code: str) -> set[str]:
    """Which heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {LIGHT!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_package_the_cli_and_the_config_import_nothing_heavy():
    assert modules_after("import hf_transfer, hf_transfer.cli, hf_transfer.config, hf_transfer.training") == set()


def test_light_subcommands_never_import_torch(tmp_path):
    code = (
        "import contextlib, io\nfrom hf_transfer.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == main(['strategies']) == main(['strategies', '--markdown']) == 0\n"
        "    assert main(['cache', 'list']) == 0\n"
    )
    assert modules_after(f"import os\nos.environ['HF_TRANSFER_CACHE'] = {str(tmp_path)!r}\n{code}") <= {"transformers"}


def test_import_hf_transfer_still_registers_the_fusion_model_with_the_auto_api():
    code = (
        "import hf_transfer\nfrom transformers import AutoModelForSequenceClassification\n"
        "from transformers.models.auto.configuration_auto import CONFIG_MAPPING\n"
        "from hf_transfer.config import FUSION_MODEL_TYPE\n"
        "assert CONFIG_MAPPING[FUSION_MODEL_TYPE] is hf_transfer.FusionConfig\n"
        "import hf_transfer.training.prepare\nfrom hf_transfer.training import prepare\nassert callable(prepare)\n"
        "assert callable(hf_transfer.fine_tune) and callable(hf_transfer.prepare)\n"
    )
    modules_after(code)


def test_the_console_script_ends_in_one_line():
    result = run_command(["hf-transfer", "rank", "--models", "a", "--train_size", "abc"])
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --train_size: labelled examples per class (> 0) or 'all', got 'abc'."
    ], result.stderr[-2000:]
