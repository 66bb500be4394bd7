"""Text classification on the shared machinery: data, block view, strategies, problem types, native output."""

import json
import re

import pytest
import torch

import hf_transfer as ht
from hf_transfer.config import TEXT_CLASSIFICATION, ModelArguments
from hf_transfer.data.builtin import with_data_presets
from hf_transfer.data.text import load_text_data
from hf_transfer.exceptions import ConfigError, DataError
from hf_transfer.models.references import resolve_text_source
from hf_transfer.models.text import build_text_model

from .conftest import NEGATIVE, POSITIVE, apply_strategy, run_command, write_text_csv


def text_args(**kwargs) -> ht.DataArguments:
    """Loaders take resolved arguments: these are the presets and defaults ``resolve_config`` fills."""
    return with_data_presets(ht.DataArguments(**kwargs), TEXT_CLASSIFICATION)


def run(tmp_path, train_file, model_dir, *extra, **data_kwargs):
    config = ht.RecipeConfig(
        task="text-classification",
        model=ht.ModelArguments(model_name_or_path=str(model_dir), **data_kwargs.pop("model", {})),
        data=ht.DataArguments(train_file=str(train_file), train_val_split=0.25, **data_kwargs),
        strategy=ht.StrategyArguments(**{"strategy": "full", **dict(extra)}),  # these tests are not about the default
        training=ht.default_training_arguments(
            "text-classification",
            output_dir=str(tmp_path / "out"),
            num_train_epochs=3,
            learning_rate=5e-3,
            per_device_train_batch_size=8,
            logging_steps=5,
        ),
    )
    return ht.fine_tune(config)


def test_single_label_run_saves_a_pipeline_ready_model_with_label_names(tmp_path, sentiment_csv, tiny_bert_dir):
    from transformers import pipeline

    result = run(tmp_path, sentiment_csv, tiny_bert_dir)
    assert result.label_names == ["neg", "pos"]
    assert {"eval_accuracy", "eval_macro_f1"} <= set(result.metrics)
    classifier = pipeline("text-classification", model=result.output_dir)
    predictions = classifier(["brilliant acting and a great story", "a dull, boring mess"])
    assert {p["label"] for p in predictions} <= {"neg", "pos"}  # real names, not LABEL_0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}


def test_sentence_pairs_use_both_columns(tmp_path, tiny_bert_dir):
    rows = [(p, "it is good", "match") for p in POSITIVE * 3] + [(n, "it is good", "mismatch") for n in NEGATIVE * 3]
    path = write_text_csv(tmp_path / "pairs.csv", rows, ("premise", "hypothesis", "label"))
    result = run(tmp_path, path, tiny_bert_dir, text_column_names="premise,hypothesis")
    assert result.metrics["eval_samples"] == 6
    resolved = json.loads((tmp_path / "out" / "hf_transfer_config.json").read_text())
    assert resolved["provenance"]["text_columns"] == ["premise", "hypothesis"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    assert 1 in tokenizer("a premise", "a hypothesis")["token_type_ids"]  # the pair is encoded as a pair


def test_multi_label_trains_with_bce_and_reports_f1(tmp_path, tiny_bert_dir):
    rows = []
    for i, text in enumerate(POSITIVE * 3 + NEGATIVE * 3):
        labels = ["positive" if text in POSITIVE else "negative"] + (["long"] if len(text) > 20 else [])
        rows.append({"text": text, "tags": labels, "id": i})
    path = tmp_path / "tags.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = run(tmp_path, path, tiny_bert_dir, label_column_name="tags")
    assert result.label_names == ["long", "negative", "positive"]
    assert {"eval_micro_f1", "eval_macro_f1", "eval_subset_accuracy"} <= set(result.metrics)
    assert result.model.config.problem_type == "multi_label_classification"


def test_regression_reports_mse_and_pearson(tmp_path, tiny_bert_dir):
    rows = [(text, 4.5 - 0.1 * i) for i, text in enumerate(POSITIVE * 3)] + [
        (text, 1.0 + 0.1 * i) for i, text in enumerate(NEGATIVE * 3)
    ]
    path = write_text_csv(tmp_path / "scores.csv", rows, ("text", "score"))
    result = run(tmp_path, path, tiny_bert_dir, label_column_name="score")
    assert result.label_names is None and result.model.config.num_labels == 1
    assert {"eval_mse", "eval_pearsonr"} <= set(result.metrics)
    assert result.metrics["eval_mse"] < 4.0  # learnt something about the 1..4.5 range


def build(model_dir, strategy, pooling="cls", **strategy_args):
    args = ModelArguments(model_name_or_path=str(model_dir), pooling=pooling)
    model, view = build_text_model(args, resolve_text_source(args), ["a", "b"], "single_label_classification")
    apply_strategy(model, view, strategy, task="text-classification", **strategy_args)
    return model, view


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_block_view_drives_freezing(tiny_bert_dir, pooling):
    model, view = build(tiny_bert_dir, "freeze", pooling=pooling, freeze_blocks=1)
    assert view.num_blocks == 2 and view.block_names[0].endswith("encoder.layer.0")
    assert all("embeddings" in n for n in view.stem)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(view.blocks[1]) | set(view.head)
    _, probe_view = build(tiny_bert_dir, "linear_probe", pooling=pooling)
    probe_trainable = {n for n, p in probe_view.model.named_parameters() if p.requires_grad}
    assert probe_trainable == set(probe_view.head)
    expected_head = {"classifier.weight", "classifier.bias"}
    assert expected_head <= probe_trainable and (pooling == "mean") == (probe_trainable == expected_head)
    with pytest.raises(ConfigError, match="exceeds the 2 blocks"):
        build(tiny_bert_dir, "freeze", freeze_blocks=3)


def test_mean_pooling_ignores_padding(tiny_bert_dir):
    model, _ = build(tiny_bert_dir, "full", pooling="mean")
    model.eval()
    ids = torch.tensor([[101, 2204, 3185, 102]])
    alone = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    padded_ids = torch.tensor([[101, 2204, 3185, 102, 0, 0]])
    padded = model(input_ids=padded_ids, attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]])).logits
    assert torch.allclose(alone, padded, atol=1e-5)


def test_mean_pooled_model_loads_without_hf_transfer(tmp_path, sentiment_csv, tiny_bert_dir):
    result = run(tmp_path, sentiment_csv, tiny_bert_dir, model={"pooling": "mean"})
    code = (
        "import sys; sys.modules['hf_transfer'] = None  # any import of hf_transfer now fails\n"
        "from transformers import pipeline\n"
        f"p = pipeline('text-classification', model={result.output_dir!r}, trust_remote_code=True)\n"
        "print(p('brilliant acting and a great story')[0]['label'])\n"
    )
    loaded = run_command(["python", "-c", code])
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().splitlines()[-1] in {"neg", "pos"}


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        ([("good", "pos"), ("bad", "neg")], {"text_column_names": "review"}, "columns are ['text', 'label']"),
        ([("good", "pos"), ("", "neg")], {}, "Row 1 of the train data: column 'text' is missing (None)"),
        ([("good", "pos"), ("bad", None)], {}, "missing labels in 3 training row(s) (1, 3, 5)"),
        ([("good", 1), ("bad", 2)], {"problem_type": "multi_label_classification"}, "must hold a list"),
    ],
)
def test_bad_text_data(tmp_path, rows, kwargs, message):
    path = write_text_csv(tmp_path / "bad.csv", rows * 3, ("text", "label"))
    with pytest.raises(DataError) as err:
        load_text_data(text_args(train_file=str(path), **kwargs))
    assert message in str(err.value)


@pytest.mark.parametrize(("texts", "message"), [(["ok", 7], "is not a string (7)"), (["ok", "  "], "is empty")])
def test_empty_or_non_string_text_names_the_row(tmp_path, texts, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": "x" if i % 2 else "y"}) for i, t in enumerate(texts)))
    with pytest.raises(DataError, match=re.escape(f"Row 1 of the train data: column 'text' {message}")):
        load_text_data(text_args(train_file=str(path)))


def test_validation_labels_outside_the_training_set(tmp_path, sentiment_csv):
    validation = write_text_csv(tmp_path / "val.csv", [("meh", "neutral"), ("good", "pos")], ("text", "label"))
    with pytest.raises(DataError, match=r"\['neutral'\].*outside the training label set"):
        load_text_data(text_args(train_file=str(sentiment_csv), validation_file=str(validation)))


def test_max_seq_length_above_the_model_maximum(tmp_path, sentiment_csv, tiny_bert_dir):
    with pytest.raises(ConfigError, match="exceeds this model's maximum of 512"):
        run(tmp_path, sentiment_csv, tiny_bert_dir, max_seq_length=100000)


def test_builtin_rotten_tomatoes_is_real_review_data():
    data = load_text_data(text_args())
    assert data.source == "builtin:rotten_tomatoes" and data.label_names == ["fresh", "rotten"]
    assert len(data.train) + len(data.validation) == 4866
    assert abs(len(data.validation) / 4866 - 0.3) < 0.01  # the preset's 30 % hold-out


@pytest.mark.slow
def test_pretrained_minilm_beats_random_init_on_real_reviews(tmp_path):
    def accuracy(from_scratch: bool) -> float:
        config = ht.RecipeConfig(
            task="text-classification",
            model=ht.ModelArguments(from_scratch=from_scratch),  # default: the built-in all-MiniLM-L6-v2
            data=ht.DataArguments(max_train_samples=400, max_eval_samples=300, max_seq_length=48),
            strategy=ht.StrategyArguments(strategy="linear_probe"),
            training=ht.default_training_arguments(
                "text-classification",
                output_dir=str(tmp_path / str(from_scratch)),
                num_train_epochs=4,
                learning_rate=1e-2,
                per_device_train_batch_size=32,
                eval_strategy="no",
                save_strategy="no",
                load_best_model_at_end=False,
                seed=0,
            ),
        )
        return ht.fine_tune(config).metrics["eval_accuracy"]

    pretrained, scratch = accuracy(False), accuracy(True)
    print(f"MiniLM linear probe (mean pooling) on 400 reviews: pretrained {pretrained:.3f}, random init {scratch:.3f}")
    assert pretrained >= 0.65 and pretrained >= scratch + 0.08


def test_text_recipe_bad_column_exits_2(tmp_path, sentiment_csv, in_process):
    from hf_transfer.cli import run_recipe  # what recipes/text_cls.py runs; its launcher: tests/test_bad_inputs.py

    argv = ["--train_file", str(sentiment_csv), "--text_column_names", "body", "--output_dir", str(tmp_path / "o")]
    result = in_process(run_recipe, "text-classification", argv)
    assert result.returncode == 2 and "columns are ['text', 'label']" in result.stderr


def test_pooling_defaults_to_mean_only_for_a_frozen_sentence_embedding_model():
    from hf_transfer.recipe import parse_config

    def pooling(*argv):
        return parse_config(["--output_dir", "/tmp/unused", *argv], task="text-classification").model.pooling

    assert pooling() == "cls"  # full fine-tuning of MiniLM: a native BertForSequenceClassification
    assert pooling("--strategy", "linear_probe") == "mean"
    assert pooling("--strategy", "linear_probe", "--model_name_or_path", "bert-base-uncased") == "cls"
    assert pooling("--pooling", "mean") == "mean"
    with pytest.raises(ConfigError, match="--pooling applies to text"):
        parse_config(["--pooling", "mean"], task="image-classification")


def test_saved_tokenizer_truncates_where_training_did(tmp_path, sentiment_csv, tiny_bert_dir):
    """Any input length works through `pipeline(..., truncation=True)`: it cuts at the training length."""
    from transformers import pipeline

    result = run(tmp_path, sentiment_csv, tiny_bert_dir, max_seq_length=24)
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 24
    classifier = pipeline("text-classification", model=result.output_dir)
    long_review = " ".join(["a wonderful, moving film"] * 3000)  # ~15,000 tokens, far past 128 positions
    assert classifier(long_review, truncation=True)[0]["label"] in {"neg", "pos"}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_building_the_model_logs_no_warning(tiny_bert_dir, pooling):
    """The head swap's LOAD REPORT is expected, so it is not shown; and hiding it by the logger's level made
    transformers 5 print that no layer "was sharded" (its tensor-parallel check), a line in every text run."""
    import logging

    warnings: list[str] = []
    listener = logging.Handler(logging.WARNING)  # transformers' loggers do not propagate to the root: listen on them
    listener.emit = lambda record: warnings.append(f"{record.name}: {record.getMessage()}")
    logging.getLogger("transformers").addHandler(listener)
    try:
        build(tiny_bert_dir, "full", pooling=pooling)
    finally:
        logging.getLogger("transformers").removeHandler(listener)
    assert warnings == []
