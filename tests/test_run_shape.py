"""The run's three typed objects: the parsed strategy (:class:`StrategySpec`) and the run's record (:class:`RunRecord`)
— one parser and one record that every reader asks, and a record that fails loudly when it drifts from its readers."""

from __future__ import annotations

import importlib
import json

import pytest

from hf_transfer.exceptions import ConfigError
from hf_transfer.run_record import FrozenFeatures, RecordError, RunRecord
from hf_transfer.strategies import StrategyArguments, StrategySpec, restricted_to, settings_read_by


def test_a_composition_parses_once_into_parts_kinds_and_settings():
    spec = StrategySpec.parse(" freeze + llrd ")
    assert spec.names == ["freeze", "llrd"] and str(spec) == "freeze+llrd"
    tower = spec.tower()
    assert tower.trainable_set == "freeze"
    assert {"freeze_blocks", "layer_lr_decay"} <= tower.settings_read
    assert not spec.frozen_backbone
    assert StrategySpec.parse("linear_probe").frozen_backbone
    assert StrategySpec.parse("l2sp").tower().trainable_set == "full"  # no trainable-set part: everything trains


def test_per_tower_strategies_round_trip_through_their_text():
    spec = StrategySpec.per_tower({"image": "linear_probe", "text": "freeze+llrd"})
    text = str(spec)
    assert text == "image: linear_probe, text: freeze+llrd"
    again = StrategySpec.parse(text)
    assert again == spec
    assert again.tower("text").parts == ("freeze", "llrd") and again.tower("image").frozen_backbone
    assert not again.frozen_backbone  # the text tower trains
    assert again.names == ["linear_probe", "freeze", "llrd"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lora+lora", "join distinct strategy names"),
        ("freeze+linear_probe", "both set the trainable set"),
        ("nosuch", "unknown strategy 'nosuch'"),
    ],
)
def test_bad_strategies_are_one_line(text, expected):
    with pytest.raises(ConfigError, match=expected):
        StrategySpec.parse(text)


def test_a_recorded_strategy_reads_without_the_registry():
    spec = StrategySpec.parse("image: my_plugin, text: lora", check=False)
    assert spec.tower("image").parts == ("my_plugin",)


def test_settings_go_only_to_the_strategy_that_reads_them():
    args = StrategyArguments(strategy="freeze", freeze_blocks=4, lora_r=8)
    lora = restricted_to(args, "lora")
    assert lora.strategy == "lora" and lora.lora_r == 8 and lora.freeze_blocks is None
    assert "freeze_blocks" in settings_read_by(["linear_probe", "freeze"])
    assert "freeze_blocks" not in settings_read_by(["linear_probe", "full"])


def test_the_record_round_trips_through_json():
    record = RunRecord(
        base_model="builtin:efficientnet_lite0",
        train_samples=12,
        label_names=["a", "b"],
        strategy="linear_probe",
        frozen_features=FrozenFeatures("stem + 7 blocks", "float16", 10, 2),
        class_balance={"train": {"a": 6, "b": 6}},
    )
    again = RunRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record
    assert again.frozen_features.counts() == {"frozen_features_encoded": 10, "frozen_features_reused": 2}


def test_a_record_that_drifts_from_its_readers_fails_loudly():
    with pytest.raises(RecordError, match="train_sampels"):
        RunRecord.from_dict({"train_sampels": 3})
    with pytest.raises(TypeError):
        RunRecord(train_sampels=3)  # a writer's typo
    assert RunRecord.from_dict({"train_samples": 3}).eval_samples == 0  # an older run's missing field: its default


def test_one_resolution_per_run_and_the_saved_config_runs_it_again(tmp_path, monkeypatch):
    """The data-size choices are made once (``resolve_run``), land in ``hf_transfer_config.json``, and that file given
    back as ``--config`` resolves to the same settings: nothing is chosen twice, nothing is lost on the way."""
    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    from .conftest import write_imagefolder

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    prepare_module = importlib.import_module("hf_transfer.training.prepare")  # the package exports the function
    calls = []
    original = prepare_module.resolve_run
    monkeypatch.setattr(prepare_module, "resolve_run", lambda *a, **k: calls.append(1) or original(*a, **k))
    data = write_imagefolder(tmp_path / "small", per_class=8)
    argv = ["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--train_dir",
            str(data), "--strategy", "linear_probe", "--output_dir", str(tmp_path / "first")]  # fmt: skip
    result = ht.fine_tune(parse_config(argv))
    assert len(calls) == 1
    saved = json.loads((tmp_path / "first" / "hf_transfer_config.json").read_text())
    chosen = {key.removeprefix("training."): value for key, value in saved["chosen_automatically"].items()}
    assert {"num_train_epochs", "learning_rate", "per_device_train_batch_size"} <= set(chosen)
    for name in ("num_train_epochs", "learning_rate", "per_device_train_batch_size"):
        assert saved["training"][name] == chosen[name] == getattr(result.trainer.args, name)

    again = ht.prepare(
        parse_config(
            ["--config", str(tmp_path / "first" / "hf_transfer_config.json"), "--output_dir", str(tmp_path / "2")]
        )
    )
    assert len(calls) == 2
    resolved = again.resolved.to_dict()
    resolved["run"].pop("config"), saved["run"].pop("config")  # the file it was given this time
    for section in ("model", "data", "strategy", "run"):
        assert resolved[section] == saved[section], section
    ignored = {"output_dir", "logging_dir", "run_name"}
    differing = {k for k in saved["training"] if k not in ignored and resolved["training"][k] != saved["training"][k]}
    assert not differing
