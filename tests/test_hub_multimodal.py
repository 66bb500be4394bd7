"""A real (small) image+text run pushed to and pulled from a Hub: the repo loads through transformers' Auto API once
hf_transfer is imported (and not without it, as its card says), its card's code runs as a user would paste it, and
``predict_multimodal`` reproduces the run's own validation predictions.

One run and one push serve every test here (module fixtures): the run trains a fusion head on frozen, cached towers,
with the per-modality ablations, in well under half a minute on two CPU cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoTokenizer

import hf_transfer as ht
from hf_transfer.cli import main as cli_main
from hf_transfer.inference import predict_multimodal

from .hub_server import HubServer
from .test_hub_push import ALICE, TIMM_REPO_FILES, card_code, run_python

REPO_ID = "alice/shapes-vqa"
QUESTION = "what color is the shape?"
# What the repo of a multimodal run holds: what a timm run's holds (the model in one safetensors file, card, figures,
# results), plus the tokenizer.
REPO_FILES = TIMM_REPO_FILES | {"tokenizer.json", "tokenizer_config.json"}
DATA = {"max_train_samples": 300, "max_eval_samples": 100}


def example_image() -> Image.Image:
    """The image `card_code` saves as example.jpg, so local and pulled predictions can be compared."""
    return Image.new("RGB", (40, 40), (30, 200, 30))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub-data"), {"alice": ALICE}) as server:
        yield server


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The default multimodal recipe (Lite0 + MiniLM on easy-vqa, linear probes), cut down; and the trained model's
    logits on fixed inputs, saved for the processes that load the pushed copy."""
    root = tmp_path_factory.mktemp("multimodal-run")
    config = ht.RecipeConfig(
        task="multimodal-classification",
        data=ht.DataArguments(**DATA),
        strategy=ht.StrategyArguments(strategy="linear_probe"),
        training=ht.default_training_arguments(
            "multimodal-classification",
            output_dir=str(root / "out"),
            num_train_epochs=1,  # one evaluation and one 100 MB checkpoint; small batches so that it learns
            per_device_train_batch_size=16,
            learning_rate=3e-3,
            logging_steps=1,
        ),
    )
    result = ht.fine_tune(config)
    out = Path(result.output_dir)
    generator = torch.Generator().manual_seed(0)
    inputs = dict(
        AutoTokenizer.from_pretrained(out)([QUESTION, "is there a red shape?"], padding=True, return_tensors="pt")
    )
    inputs["pixel_values"] = torch.randn(2, 3, 64, 64, generator=generator)
    torch.save(inputs, root / "inputs.pt")
    model = result.model.eval()
    with torch.no_grad():
        logits = model(**inputs).logits.tolist()
    return {"out": out, "inputs": root / "inputs.pt", "logits": logits, "metrics": result.metrics}


@pytest.fixture(scope="module")
def pushed(hub: HubServer, run: dict[str, Any]) -> list[str]:
    code = "import sys, hf_transfer\nresult = hf_transfer.push_to_hub(sys.argv[1], sys.argv[2]).files"
    return run_python(hub, ALICE, code, str(run["out"]), REPO_ID)


@pytest.fixture(scope="module")
def pulled(hub: HubServer, run: dict[str, Any], pushed: list[str]) -> dict[str, Any]:
    """Everything a user of the pushed repo does, in one fresh process (anonymous): run the card's code blocks, load
    the model both ways, predict with the helper."""
    code = f"""
        import sys, torch
        import hf_transfer
        from huggingface_hub import HfApi, ModelCard
        from transformers import AutoModelForSequenceClassification
        from hf_transfer import FusionForClassification
        from hf_transfer.inference import predict_multimodal

        inputs = torch.load(sys.argv[1])
        auto = AutoModelForSequenceClassification.from_pretrained("{REPO_ID}").eval()
        direct = FusionForClassification.from_pretrained("{REPO_ID}").eval()
        with torch.no_grad():
            logits = [model(**inputs).logits.tolist() for model in (auto, direct)]
        card = ModelCard.load("{REPO_ID}")
        result = {{
            "auto_class": type(auto).__name__,
            "logits": logits,
            "predicted": predict_multimodal("{REPO_ID}", ["example.jpg"], ["{QUESTION}"], top_k=3),
            "files": HfApi().list_repo_files("{REPO_ID}"),
            "metadata": card.data.to_dict(),
            "text": card.text,
            "card_blocks": card_blocks,
        }}
    """
    return run_python(hub, None, code, str(run["inputs"]), before=card_code(REPO_ID))


def test_repo_holds_the_model_tokenizer_card_and_results_only(pushed, pulled):
    assert set(pushed) == set(pulled["files"]) == REPO_FILES  # no checkpoints, no per-example predictions


def test_auto_api_and_fusion_class_load_the_trained_weights(run, pulled):
    assert pulled["auto_class"] == "FusionForClassification"
    for logits in pulled["logits"]:  # AutoModelForSequenceClassification, then FusionForClassification
        torch.testing.assert_close(torch.tensor(logits), torch.tensor(run["logits"]), atol=1e-5, rtol=0)


def test_card_code_runs_and_predict_multimodal_works_on_the_repo(run, pulled, tmp_path):
    blocks = pulled["card_blocks"]
    assert len(blocks) == 2  # the Auto API snippet and the predict_multimodal one both ran against the repo
    assert "import hf_transfer  # registers the model class" in blocks[0]
    assert f'AutoModelForSequenceClassification.from_pretrained("{REPO_ID}")' in blocks[0]
    assert 'timm.data.create_transform(**model.config.image_tower["data_config"])' in blocks[0]
    assert f'predict_multimodal("{REPO_ID}", ["example.jpg"], ["{QUESTION}"])' in blocks[1]
    example_image().save(tmp_path / "example.jpg")  # as card_code saves it: JPEG is lossy
    local = predict_multimodal(run["out"], [tmp_path / "example.jpg"], [QUESTION], top_k=3)
    (pulled_top,) = pulled["predicted"]
    assert [label for label, _ in pulled_top] == [label for label, _ in local[0]]
    assert [p for _, p in pulled_top] == pytest.approx([p for _, p in local[0]], abs=1e-5)


def test_card_shows_both_towers_the_ablation_and_the_hf_transfer_requirement(run, pulled):
    metadata, text, metrics = pulled["metadata"], pulled["text"], run["metrics"]
    assert metadata["library_name"] == "hf-transfer-toolkit"
    assert "pipeline_tag" not in metadata  # no pipeline() loads it: the Hub must not offer one
    assert metadata["base_model"] == ["timm/tf_efficientnet_lite0.in1k", "sentence-transformers/all-MiniLM-L6-v2"]
    assert metadata["base_model_relation"] == "finetune"  # not a weight merge of the two
    card = ModelCard(f"---\n{json.dumps(metadata)}\n---\n")
    index = {(r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert index[("accuracy", "Accuracy")] == round(metrics["eval_accuracy"], 4)
    assert len(index) == 3  # accuracy, macro F1, top-5: the ablation heads' numbers are not this model's
    assert "### Loading needs hf_transfer" in text and "pip install hf-transfer-toolkit" in text
    for row in (
        f"| image + text (these weights) | {metrics['eval_accuracy']:.4f} |",
        f"| image only | {metrics['eval_image_only_accuracy']:.4f} |",
        f"| text only | {metrics['eval_text_only_accuracy']:.4f} |",
    ):
        assert row in text
    assert (
        "| Image tower training | `linear_probe`: frozen" in text and "| Text tower training | `linear_probe`" in text
    )
    assert "| input size (channels, height, width) | (3, 64, 64) |" in text
    assert "| max sequence length (tokens) | 32 |" in text
    assert "from the dataset's own `test` split" in text  # easy-vqa's official test split, not a hold-out
    assert "![Training and validation curves](training_curves.png)" in text


def test_pushed_run_records_hold_no_local_paths(hub, run, pushed):
    code = f"""
        from huggingface_hub import hf_hub_download
        names = ("hf_transfer_config.json", "trainer_state.json")
        result = {{name: open(hf_hub_download("{REPO_ID}", name)).read() for name in names}}
    """
    records = run_python(hub, None, code)
    local = str(run["out"].resolve())
    assert local in (run["out"] / "hf_transfer_config.json").read_text()  # the local copy keeps them
    for name, text in records.items():
        assert local not in text and str(Path.home()) + "/" not in text, name
    assert json.loads(records["hf_transfer_config.json"])["training"]["output_dir"] == "."


def test_transformers_alone_cannot_load_it_as_the_card_says(hub, pushed):
    code = f"""
        from transformers import AutoModelForSequenceClassification
        try:
            AutoModelForSequenceClassification.from_pretrained("{REPO_ID}")
            result = "loaded"
        except (KeyError, ValueError) as err:
            result = str(err)
    """
    message = run_python(hub, None, code, without_hf_transfer=True)
    assert "hf_transfer_fusion" in message


def test_predict_multimodal_reproduces_the_runs_validation_predictions(run):
    from hf_transfer.config import MULTIMODAL_CLASSIFICATION
    from hf_transfer.data.builtin import with_data_presets
    from hf_transfer.data.multimodal import load_multimodal_data

    data = with_data_presets(ht.DataArguments(**DATA), MULTIMODAL_CLASSIFICATION)  # as the run resolved them
    validation = load_multimodal_data(data, seed=42).validation
    recorded = json.loads((run["out"] / "eval_predictions.json").read_text())["predictions"]
    label_names = json.loads((run["out"] / "config.json").read_text())["id2label"]
    assert len(set(recorded)) > 2  # more than yes/no: the image's answers (colours, shapes) are checked too
    top = predict_multimodal(run["out"], validation["image"], validation["question"], top_k=1)
    assert [label for ((label, _),) in top] == [label_names[str(i)] for i in recorded]


def test_mismatched_inputs_are_refused_before_loading_anything(run):
    images = [example_image()] * 3
    for source in (run["out"], REPO_ID):  # the repo: refused before any download (this process is offline)
        with pytest.raises(ValueError, match=r"Got 3 image\(s\) but 2 text\(s\)"):
            predict_multimodal(source, images, [QUESTION] * 2)
    with pytest.raises(ValueError, match="trained on single texts"):
        predict_multimodal(run["out"], images, [(QUESTION, "second")] * 3)
    with pytest.raises(ValueError, match="reads texts too"):
        predict_multimodal(run["out"], images, None)


def test_cli_predicts_image_text_pairs(run, tmp_path, capsys):
    image = tmp_path / "shape.png"
    example_image().save(image)
    assert cli_main(["predict", "--model", str(run["out"]), str(image), "--text", QUESTION, "--top_k", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{image}  {QUESTION!r}" and len(lines) == 3
    expected = predict_multimodal(run["out"], [example_image()], [QUESTION], top_k=2)[0]
    assert [line.split()[-1] for line in lines[1:]] == [label for label, _ in expected]
    assert cli_main(["predict", "--model", str(run["out"]), str(image)]) == 2
    assert "pass --text" in capsys.readouterr().err
    assert (
        cli_main(
            [
                "predict",
                "--model",
                str(run["out"]),
                str(image),
                str(image),
                "--text",
                "a",
                "--text",
                "b",
                "--text",
                "c",
            ]
        )
        == 2
    )
    assert "--text was given 3 times for 2 images" in capsys.readouterr().err
