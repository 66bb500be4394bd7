from pathlib import Path

import pytest

from hf_transfer.config import IMAGE_TRAINING_DEFAULTS
from hf_transfer.exceptions import ConfigError
from hf_transfer.recipe import parse_config


def parse(*argv: str, **defaults):
    return parse_config(list(argv), defaults={**IMAGE_TRAINING_DEFAULTS, **defaults})


def test_defaults_are_the_offline_demo(tmp_path):
    config = parse("--output_dir", str(tmp_path))
    assert config.model.model_name_or_path == "builtin:efficientnet_lite0"
    assert config.strategy.strategy == "full"
    assert config.training.learning_rate == IMAGE_TRAINING_DEFAULTS["learning_rate"]
    assert config.training.use_cpu  # no accelerator on the test machines
    # the built-in digits preset fills what the user left unset: no mirroring, small resolution
    assert config.data.hflip == 0.0 and config.data.image_size == 64


def test_user_data_gets_generic_augmentation(imagefolder, tmp_path):
    config = parse("--train_dir", str(imagefolder), "--output_dir", str(tmp_path))
    assert config.data.hflip == 0.5 and config.data.image_size is None


def test_yaml_overrides_defaults_and_cli_overrides_yaml(tmp_path: Path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "model:\n  model_name_or_path: test_vit\nstrategy:\n  strategy: freeze\n  freeze_blocks: 2\n"
        "training:\n  learning_rate: 0.01\n  num_train_epochs: 7\nmax_train_samples: 50\n"
    )
    config = parse("--config", str(yaml_file), "--learning_rate", "0.5", "--output_dir", str(tmp_path / "o"))
    assert config.model.model_name_or_path == "test_vit"
    assert (config.strategy.strategy, config.strategy.freeze_blocks) == ("freeze", 2)
    assert config.training.num_train_epochs == 7  # from the file
    assert config.training.learning_rate == 0.5  # the command line wins
    assert config.data.max_train_samples == 50


def test_yaml_with_unknown_key_names_it(tmp_path: Path):
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        parse("--config", str(yaml_file))


def test_missing_yaml_file():
    with pytest.raises(ConfigError, match="does not exist"):
        parse("--config", "nope.yaml")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--strategy", "full", "--freeze_blocks", "2"], "--freeze_blocks"),
        (["--strategy", "freeze", "--freeze_blocks", "-1"], "--freeze_blocks"),
        (["--train_val_split", "1.5"], "--train_val_split"),
        (["--max_train_samples", "0"], "--max_train_samples"),
        (["--hflip", "2"], "--hflip"),
        (["--train_dir", "/does/not/exist"], "--train_dir"),
        (["--train_file", "/does/not/exist.csv"], "--train_file"),
        (["--validation_dir", "."], "--validation_dir"),
        (["--dataset_name", "beans", "--train_dir", "."], "--dataset_name"),
        (["--strategy", "linear_prob"], "linear_probe"),  # suggests the close name
        (["--eval_strategy", "no"], "--load_best_model_at_end"),
    ],
)
def test_invalid_combinations_fail_early_naming_the_flag(argv, flag):
    with pytest.raises(ConfigError, match=flag):
        parse(*argv)


@pytest.mark.parametrize("name", ["image_linear_probe.yaml", "image_freeze.yaml"])
def test_shipped_recipe_configs_parse(name):
    from .conftest import REPO

    config = parse("--config", str(REPO / "recipes" / "configs" / name))
    assert config.strategy.strategy in {"linear_probe", "freeze"}


@pytest.mark.parametrize(
    "argv, task, read",
    [
        (["--no_augment"], "image-classification", lambda c: c.data.no_augment),
        (["--strategy", "lora", "--merge_adapter"], "image-classification", lambda c: c.strategy.merge_adapter),
        (["--ablations"], "multimodal-classification", lambda c: c.fusion.ablations),
    ],
)
def test_unset_able_booleans_work_as_bare_flags(argv, task, read):
    """`bool | None` settings (None: a preset or the strategy decides) are still plain flags on the command line."""
    assert read(parse_config(argv, task=task)) is True
    assert read(parse_config([*argv, "False"], task=task)) is False
