import json

import pytest
import timm
import torch

from hf_transfer.config import ModelArguments
from hf_transfer.exceptions import ConfigError
from hf_transfer.hub import save_timm_model
from hf_transfer.models import build_image_model, builtin_checkpoint_dir
from hf_transfer.models import resolve_image_source as resolve_model_source
from hf_transfer.models.checkpoints import efficientnet_block_slots, efficientnet_pytorch_key


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(ConfigError, match="resnet18"):
        resolve_model_source(ModelArguments(model_name_or_path="resnet_18"))


def test_unknown_builtin_lists_the_builtins():
    with pytest.raises(ConfigError, match="builtin:efficientnet_lite0"):
        resolve_model_source(ModelArguments(model_name_or_path="builtin:nope"))


def test_bare_checkpoint_file_needs_an_architecture(tmp_path):
    model = timm.create_model("test_vit", num_classes=3)
    path = tmp_path / "weights.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ConfigError, match="--architecture"):
        resolve_model_source(ModelArguments(model_name_or_path=str(path)))
    wrapper, _ = build_image_model(ModelArguments(model_name_or_path=str(path), architecture="test_vit"), ["x", "y"])
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    loaded = wrapper.timm_model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in body.items())  # transferred weights
    assert wrapper.timm_model.get_classifier().out_features == 2  # new head for the new labels


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        resolve_model_source(ModelArguments(model_name_or_path=str(tmp_path)))


def test_hub_ids_and_timm_names_resolve_without_network():
    assert resolve_model_source(ModelArguments(model_name_or_path="timm/resnet50.a1_in1k")).timm_name == (
        "hf-hub:timm/resnet50.a1_in1k"
    )
    assert resolve_model_source(ModelArguments(model_name_or_path="resnet18.a1_in1k")).timm_name == "resnet18.a1_in1k"


def test_new_head_starts_at_zero_and_has_the_label_count():
    wrapper, view = build_image_model(
        ModelArguments(model_name_or_path="test_efficientnet", from_scratch=True), list("abcd")
    )
    head = wrapper.timm_model.get_classifier()
    assert head.out_features == 4 and not head.weight.any() and not head.bias.any()
    assert wrapper.config.id2label == {0: "a", 1: "b", 2: "c", 3: "d"}
    assert view.head == ["timm_model.classifier.weight", "timm_model.classifier.bias"]


def test_lite0_key_remap():
    """Per key, what the built-in's conversion does (Lite0's stage sizes [1, 2, 2, 3, 3, 4, 1] read off timm)."""
    slots = efficientnet_block_slots(timm.create_model("tf_efficientnet_lite0", pretrained=False))

    def remap_lite0_key(key: str) -> str:
        return efficientnet_pytorch_key(key, slots)

    assert remap_lite0_key("_conv_stem.weight") == "conv_stem.weight"
    assert remap_lite0_key("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert remap_lite0_key("_blocks.0._bn2.running_var") == "blocks.0.0.bn2.running_var"
    assert remap_lite0_key("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"  # stages [1, 2, 2, ...]
    assert remap_lite0_key("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert remap_lite0_key("_fc.bias") == "classifier.bias"


def test_converted_lite0_recognises_a_real_cat_photo():
    """The converted weights are the genuine ImageNet model: scikit-image's 'chelsea' is a tabby cat."""
    from PIL import Image
    from skimage import data as skdata
    from timm.data import ImageNetInfo, create_transform, resolve_data_config

    folder = builtin_checkpoint_dir("builtin:efficientnet_lite0")
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    with torch.no_grad():
        probs = model(transform(Image.fromarray(skdata.chelsea()))[None]).softmax(-1)[0]
    top = ImageNetInfo().index_to_description(int(probs.argmax()))
    assert top in {"tabby, tabby cat", "tiger cat", "Egyptian cat"}, top
    assert probs[[281, 282, 285]].sum() > 0.7  # tabby + tiger cat + Egyptian cat


def test_builtin_cache_is_checked_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path))
    folder = builtin_checkpoint_dir("builtin:efficientnet_lite0")
    good = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(good[:1000])  # a truncated cache file
    assert (builtin_checkpoint_dir("builtin:efficientnet_lite0") / "model.safetensors").read_bytes() == good


def test_saved_model_loads_natively_with_label_names(tmp_path):
    from transformers import AutoModelForImageClassification

    wrapper, _ = build_image_model(
        ModelArguments(model_name_or_path="test_convnext", from_scratch=True), ["cat", "dog"]
    )
    torch.nn.init.normal_(wrapper.timm_model.get_classifier().weight)
    data_config = {"input_size": (3, 40, 40), "mean": (0.1, 0.2, 0.3), "std": (0.5, 0.5, 0.5), "crop_pct": 1.0}
    save_timm_model(wrapper.timm_model, tmp_path, ["cat", "dog"], data_config)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["label_names"] == ["cat", "dog"] and config["num_classes"] == 2
    assert config["pretrained_cfg"]["input_size"] == [3, 40, 40]  # the preprocessing it was trained with
    assert "num_classes" not in config.get("model_args", {})  # transformers' TimmWrapper would get it twice
    pixels = torch.randn(2, 3, 40, 40)
    wrapper.eval()
    expected = wrapper(pixel_values=pixels).logits
    timm_model = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert timm_model.pretrained_cfg["label_names"] == ["cat", "dog"]
    assert torch.allclose(timm_model(pixels), expected, atol=1e-5)
    hf_model = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert hf_model.config.id2label == {0: "cat", 1: "dog"}
    assert torch.allclose(hf_model(pixel_values=pixels).logits, expected, atol=1e-5)


def test_hub_revision_uses_timms_syntax_and_is_rejected_elsewhere():
    source = resolve_model_source(ModelArguments(model_name_or_path="timm/vit_tiny", model_revision="v2"))
    assert source.timm_name == "hf-hub:timm/vit_tiny@v2"
    with pytest.raises(ConfigError, match="--model_revision"):
        resolve_model_source(ModelArguments(model_name_or_path="resnet18", model_revision="v2"))
