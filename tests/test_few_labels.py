"""Few labels: the contrastive strategy, the small-data protocol, the default by data size and zero-shot heads."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import NEGATIVE, POSITIVE, write_imagefolder, write_text_csv


def _run(argv: list[str], task: str = "text-classification"):
    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    return ht.fine_tune(parse_config(argv, task=task))


# ------------------------------------------------------------------------------------------------ the pair loss


def test_the_pair_loss_matches_a_hand_computed_case():
    """Embeddings (1,0), (0,1), (1,1) with labels 0, 0, 1: the one positive pair has cosine 0 (error 1), the two
    negative pairs cosine 1/√2 (error 1/2 each); positives and negatives weigh equally: (1 + 1/2) / 2 = 0.75."""
    from hf_transfer.training.contrastive import pairwise_cosine_loss

    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    loss = pairwise_cosine_loss(embeddings, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(0.75)
    # scale does not matter (cosine), and a perfect embedding has no loss
    assert pairwise_cosine_loss(3 * embeddings, torch.tensor([0, 0, 1])).item() == pytest.approx(0.75)
    perfect = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    assert pairwise_cosine_loss(perfect, torch.tensor([0, 0, 1])).item() == pytest.approx(0.0, abs=1e-7)
    # only one kind of pair present: its mean alone
    same = pairwise_cosine_loss(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 1]))
    assert same.item() == pytest.approx(1.0)


def test_the_phase_is_sized_by_the_data():
    from hf_transfer.strategies import StrategyArguments
    from hf_transfer.strategies.contrastive import (
        DEFAULT_EPOCHS,
        MAX_STEPS,
        SMALL_RUN_EPOCHS,
        SMALL_RUN_EXAMPLES,
        Contrastive,
    )

    strategy = Contrastive(StrategyArguments(strategy="contrastive"))
    small = strategy.body_phase(SMALL_RUN_EXAMPLES)
    assert (small.epochs, small.batch_size) == (SMALL_RUN_EPOCHS, 16)
    assert strategy.body_phase(SMALL_RUN_EXAMPLES + 1).epochs == DEFAULT_EPOCHS  # 2 batches an epoch
    large = strategy.body_phase(10_000)  # 625 batches an epoch: capped near MAX_STEPS
    assert large.epochs * math.ceil(10_000 / 16) <= 1.5 * MAX_STEPS and large.epochs >= 1
    given = Contrastive(StrategyArguments(strategy="contrastive", contrastive_epochs=3, contrastive_batch_size=8))
    assert given.body_phase(100).epochs == 3 and given.body_phase(100).batch_size == 8


def test_the_phase_trains_with_the_runs_optimizer():
    """The phase builds its optimizer as the Trainer does: fused AdamW by default (torch's per-tensor loop costs a
    quarter of the phase on CPU), whatever ``--optim`` names otherwise; always at the phase's own rate."""
    from transformers import TrainingArguments

    from hf_transfer.training.contrastive import WEIGHT_DECAY, phase_optimizer

    parameters = [torch.nn.Parameter(torch.zeros(3))]
    default = phase_optimizer(parameters, TrainingArguments(output_dir="unused", report_to=[]), 2e-5)
    assert isinstance(default, torch.optim.AdamW) and default.defaults["fused"] is True
    assert default.defaults["lr"] == 2e-5 and default.defaults["weight_decay"] == WEIGHT_DECAY
    sgd = phase_optimizer(parameters, TrainingArguments(output_dir="unused", report_to=[], optim="sgd"), 1e-3)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["lr"] == 1e-3


def test_contrastive_is_refused_for_images(tmp_path):
    from hf_transfer.exceptions import ConfigError

    data = write_imagefolder(tmp_path / "colours", per_class=4)
    with pytest.raises(ConfigError, match="contrastive is for text"):
        _run(["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32",
              "--train_dir", str(data), "--strategy", "contrastive", "--output_dir", str(tmp_path / "out")],
             task="image-classification")  # fmt: skip


# ------------------------------------------------------------------------------- the default on tiny text data


def test_tiny_text_data_gets_the_contrastive_default_and_no_hold_out(tmp_path, tiny_bert_dir, monkeypatch, caplog):
    """8 labelled texts per class and no validation file: every example trains (no 15 % hold-out of 1 per class),
    the strategy is contrastive (chosen, said and recorded; its setting given without --strategy is used), its phase
    changes the body, the head is fitted in closed form (the log's choices name no Trainer steps), and the card says
    there is no validation metric. The saved model is an ordinary pipeline model, which loads without a report of
    missing weights."""
    from transformers import AutoModel, pipeline

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="hf_transfer"):
        result = _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data),
                       "--contrastive_epochs", "3", "--output_dir", str(out)])  # fmt: skip
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Chosen automatically")]
    assert len(chosen) == 1 and "closed form" in chosen[0] and "no validation split" in chosen[0]
    assert "steps of" not in chosen[0] and "lr " not in chosen[0]
    assert not any(key.startswith("eval_") for key in result.metrics)
    saved = json.loads((out / "hf_transfer_config.json").read_text())
    record = saved["provenance"]
    assert record["strategy"] == "contrastive" and record["train_samples"] == 16 and record["eval_samples"] == 0
    assert "fewer than 5 per class" in record["no_validation"]
    assert record["strategy_chosen"].startswith("--strategy contrastive (8 examples in the smallest class")
    assert "contrastive phase: 3 epochs" in record["body_phase"] and "optimistic" in record["head_fit"]
    assert saved["chosen_automatically"]["strategy.strategy"] == "contrastive"
    assert saved["model"]["pooling"] == "mean"
    # the phase changed the body: its weights differ from the checkpoint's
    before = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    after = result.model.encoder.state_dict()
    changed = [name for name in before if name in after and not torch.equal(before[name], after[name])]
    assert len(changed) > len(before) // 2
    card = (out / "README.md").read_text()
    assert "Validation examples: none: a 15% hold-out" in card and "Not measured" in card
    assert "Strategy chosen automatically: --strategy contrastive" in card and "contrastive phase:" in card
    assert "after a contrastive phase that trained the body" in card  # the trainable count is the head's alone
    reports: list[str] = []  # transformers' own handler does not propagate: listen on its logger
    listener = logging.Handler()
    listener.emit = lambda record: reports.append(record.getMessage())
    logging.getLogger("transformers").addHandler(listener)
    try:
        classifier = pipeline("text-classification", model=str(out), trust_remote_code=True)
    finally:
        logging.getLogger("transformers").removeHandler(listener)
    assert not [m for m in reports if "MISSING" in m]  # the load report: the unused pooler is not built
    assert {p["label"] for p in classifier(["a wonderful film", "a dull mess"])} <= {"pos", "neg"}


def test_a_setting_for_a_strategy_the_size_did_not_choose_is_refused_in_one_line(tmp_path, tiny_bert_dir):
    """With no --strategy the data size chooses it, so a contrastive setting waits for the data: on 36 examples per
    class more than the contrastive default's boundary (the hold-out taken for it leaves fewer) the default is full,
    which reads no such setting: refused before the model is built, saying why."""
    from hf_transfer.exceptions import ConfigError
    from hf_transfer.training.size_defaults import CONTRASTIVE_UP_TO

    n = CONTRASTIVE_UP_TO + 36
    rows = [(f"{word} film {i}", label) for i in range(n) for word, label in (("great", "pos"), ("awful", "neg"))]
    data = write_text_csv(tmp_path / "many.csv", rows, ("text", "label"))
    with pytest.raises(ConfigError) as refused:
        _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--contrastive_epochs", "3",
              "--output_dir", str(tmp_path / "out")])  # fmt: skip
    message = str(refused.value)
    assert "--contrastive_epochs does not apply to --strategy full" in message
    assert f"No --strategy was given, and for {n} examples in the smallest class the default is full" in message
    assert "\n" not in message and not (tmp_path / "out").exists()
    # the same when the size chooses another strategy than the task's: freeze on 5 images a class, --head_c unread
    images = write_imagefolder(tmp_path / "colours", per_class=5)
    argv = ["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--train_dir",
            str(images), "--head_c", "1", "--output_dir", str(tmp_path / "images")]  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        _run(argv, task="image-classification")
    message = str(refused.value)
    assert "--head_c does not apply to --strategy freeze" in message
    assert "No --strategy was given, and for 5 examples in the smallest class the default is freeze" in message


def test_a_given_strategy_or_validation_is_always_used(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    out = tmp_path / "out"
    result = _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--strategy",
                   "linear_probe", "--train_val_split", "0.25", "--max_steps", "2",
                   "--output_dir", str(out)])  # fmt: skip
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert record["strategy"] == "linear_probe" and record["strategy_chosen"] is None
    assert record["eval_samples"] == 4 and record["no_validation"] is None  # the fraction the user gave
    assert "eval_accuracy" in result.metrics


def test_a_ctrl_c_swallowed_while_preparing_stops_a_closed_form_run(tmp_path, monkeypatch):
    """A Ctrl-C that library code swallows while the data and cache are prepared (``datasets`` hashes under a bare
    ``except:``) was lost on a closed-form run, which fires no Trainer callback: the run saved and exited 0 (seen
    by pressing Ctrl-C on a few-label text run). It stops before anything is saved."""
    import os
    import signal
    import time

    from hf_transfer.exceptions import Interrupted
    from hf_transfer.training import run

    real_prepare = run.prepare

    def prepare_and_swallow(config):
        prepared = real_prepare(config)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, in the main thread
        except:  # noqa: E722
            pass
        return prepared

    monkeypatch.setattr(run, "prepare", prepare_and_swallow)
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    out = tmp_path / "out"
    with pytest.raises(Interrupted) as stopped:
        _run(["--model_name_or_path", "builtin:all-MiniLM-L6-v2", "--train_file", str(data), "--strategy",
              "linear_probe", "--head_solver", "closed_form", "--output_dir", str(out)])  # fmt: skip
    assert stopped.value.exit_status == 130 and "SIGINT" in str(stopped.value)
    assert not (out / "model.safetensors").exists() and not (out / "hf_transfer_config.json").exists()


def test_the_text_default_holds_nothing_out_where_it_would_choose_nothing(tmp_path, tiny_bert_dir):
    """40 texts per class: a 15 % hold-out would leave 6 per class, enough to choose a checkpoint, but the text
    default there (contrastive, a closed-form head) chooses nothing on it, so every example trains, as it does when
    the user names contrastive; a strategy that chooses on it (``full``, named) still gets its hold-out."""
    from hf_transfer.data.labels import too_few_to_hold_out
    from hf_transfer.data.text import load_text_data
    from hf_transfer.recipe import parse_config
    from hf_transfer.training.size_defaults import CONTRASTIVE_UP_TO, closed_form_default_up_to

    rows = [(f"{t} {i}", "pos") for i in range(10) for t in POSITIVE[:4]]
    rows += [(f"{t} {i}", "neg") for i in range(10) for t in NEGATIVE[:4]]
    data = write_text_csv(tmp_path / "forty.csv", rows, ("text", "label"))
    default = parse_config(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data),
                            "--output_dir", str(tmp_path / "a")], task="text-classification")  # fmt: skip

    def named_config(strategy: str):
        argv = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--strategy", strategy]
        return parse_config([*argv, "--output_dir", str(tmp_path / strategy)], task="text-classification")

    named, contrastive = named_config("full"), named_config("contrastive")
    assert closed_form_default_up_to(default) == CONTRASTIVE_UP_TO == closed_form_default_up_to(contrastive)
    assert closed_form_default_up_to(named) == 0
    kept = load_text_data(default.data, 0, chooses_nothing_up_to=closed_form_default_up_to(default))
    assert (len(kept.train), len(kept.validation)) == (80, 0)
    assert "chooses nothing on a validation split" in kept.no_validation
    held = load_text_data(named.data, 0, chooses_nothing_up_to=closed_form_default_up_to(named))
    assert (len(held.train), len(held.validation), held.no_validation) == (68, 12, None)
    assert too_few_to_hold_out(held.train, "label", 0.15, chooses_nothing_up_to=40) is not None


def test_the_text_default_above_its_boundary_keeps_the_strategy_its_hold_out_was_taken_for(tmp_path, tiny_bert_dir):
    """8 texts per class above the text default's boundary (264 at 256): 15 % is held out for ``full`` to choose its
    checkpoint on. The strategy is chosen on the labelled count, not on what the hold-out left (224 of 264, which
    chose ``contrastive``: it chooses nothing on the 40 held out, labels spent for nothing)."""
    from hf_transfer.data.text import load_text_data
    from hf_transfer.recipe import parse_config
    from hf_transfer.training.size_defaults import CONTRASTIVE_UP_TO, closed_form_default_up_to, with_strategy_for_data

    n = CONTRASTIVE_UP_TO + 8
    rows = [(f"{say[i % 4]} {i}", label) for i in range(n) for say, label in ((POSITIVE, "pos"), (NEGATIVE, "neg"))]
    data = write_text_csv(tmp_path / "above.csv", rows, ("text", "label"))
    argv = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--output_dir", str(tmp_path / "a")]
    default = parse_config(argv, task="text-classification")
    held = load_text_data(default.data, 0, chooses_nothing_up_to=closed_form_default_up_to(default))
    assert held.no_validation is None and len(held.train) / 2 <= CONTRASTIVE_UP_TO < n
    assert with_strategy_for_data(default, held).strategy.strategy == "full"
    sampled = parse_config([*argv, "--train_samples_per_class", "40"], task="text-classification")
    few = load_text_data(sampled.data, 0, chooses_nothing_up_to=closed_form_default_up_to(sampled))
    assert len(few.train) == 80 and len(few.validation) > 0  # held out of the pool before sampling: not counted
    assert with_strategy_for_data(sampled, few).strategy.strategy == "contrastive"


def test_tiny_image_data_trains_without_a_validation_folder(tmp_path, monkeypatch):
    """5 images per class and no validation folder: the image default used to refuse (a stratified 15 % of 5 per
    class is impossible); now every image trains, with the few-image default (half the blocks frozen), no
    evaluation."""
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_imagefolder(tmp_path / "colours", per_class=5)
    out = tmp_path / "out"
    result = _run(["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32",
                   "--train_dir", str(data), "--max_steps", "3", "--output_dir", str(out)],
                  task="image-classification")  # fmt: skip
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert record["train_samples"] == 15 and record["eval_samples"] == 0 and record["strategy"] == "freeze"
    saved = json.loads((out / "hf_transfer_config.json").read_text())
    assert saved["strategy"]["freeze_blocks"] >= 1 and "images in the smallest class" in record["strategy_chosen"]
    card = (out / "README.md").read_text()
    assert card.count("images in the smallest class") == 1 and "`freeze_blocks=" in card  # said once; the count
    assert result.trainer.state.global_step == 3 and "eval_accuracy" not in result.metrics
    assert (out / "model.safetensors").is_file() and not (out / "eval_predictions.json").exists()


def test_the_default_strategy_by_size():
    from hf_transfer.training.size_defaults import CONTRASTIVE_UP_TO, FREEZE_HALF_UP_TO, default_strategy

    assert default_strategy("text-classification", 8)[0] == "contrastive"
    assert default_strategy("text-classification", CONTRASTIVE_UP_TO)[0] == "contrastive"
    assert default_strategy("text-classification", CONTRASTIVE_UP_TO + 1) is None  # the task's default (full)
    assert default_strategy("image-classification", 5)[0] == "freeze"
    assert default_strategy("image-classification", FREEZE_HALF_UP_TO)[0] == "freeze"
    assert default_strategy("image-classification", FREEZE_HALF_UP_TO + 1) is None
    assert default_strategy("image-classification", None) is None  # multi-label: the task's default
    assert default_strategy("text-classification", None) is None  # multi-label, regression
    assert default_strategy("text-classification", 0)[0] == "linear_probe"  # zero-shot
    from hf_transfer.config import STRATEGIES_CHOSEN_BY_SIZE  # what validation lets wait for the data

    for task, strategies in STRATEGIES_CHOSEN_BY_SIZE.items():
        chosen = {default_strategy(task, n) for n in range(0, 200)} - {None}
        assert {strategy for strategy, _ in chosen} == set(strategies)


# ------------------------------------------------------------------------------------------------- zero-shot

TOPICS = {
    "sport": ["The striker scored twice in the second half.", "The team won the championship final.",
              "She ran the marathon in record time.", "The tennis match went to a fifth set."],
    "cooking": ["Simmer the onions in butter until golden.", "Bake the bread for forty minutes.",
                "Season the soup with salt and pepper.", "Whisk the eggs and sugar together."],
    "weather": ["Heavy rain and strong winds are expected tonight.", "Tomorrow will be sunny and warm.",
                "Snow fell across the mountains overnight.", "A thunderstorm warning was issued."],
}  # fmt: skip


def _topic_csv(tmp_path: Path) -> Path:
    rows = [(text, label) for label, texts in TOPICS.items() for text in texts * 2]  # 8 per class
    return write_text_csv(tmp_path / "topics.csv", rows, ("text", "label"))


def test_zero_shot_predicts_from_the_label_descriptions(tmp_path, monkeypatch):
    """No labelled example: the real MiniLM's embeddings of the descriptions are the head. Topic texts land on their
    own description far above chance (1/3); swapping two descriptions swaps what those texts are called, so the head
    is the descriptions and nothing else."""
    from transformers import pipeline

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = _topic_csv(tmp_path)
    descriptions = {"sport": "sports and games", "cooking": "cooking and recipes", "weather": "the weather forecast"}
    swapped = {**descriptions, "sport": descriptions["cooking"], "cooking": descriptions["sport"]}
    texts = [text for texts in TOPICS.values() for text in texts]
    truth = [label for label, texts in TOPICS.items() for _ in texts]
    predicted = {}
    for name, mapping in (("given", descriptions), ("swapped", swapped)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(mapping))
        out = tmp_path / name
        result = _run(["--model_name_or_path", "builtin:all-MiniLM-L6-v2", "--train_file", str(data),
                       "--train_samples_per_class", "0", "--label_descriptions", str(path),
                       "--train_val_split", "0.25", "--output_dir", str(out)])  # fmt: skip
        assert result.trainer.state.global_step == 0
        classifier = pipeline("text-classification", model=str(out), trust_remote_code=True)
        predicted[name] = [p["label"] for p in classifier(texts)]
    correct = sum(p == t for p, t in zip(predicted["given"], truth))
    assert correct >= 10, (correct, predicted["given"])  # of 12; chance is 4
    flip = {"sport": "cooking", "cooking": "sport", "weather": "weather"}
    assert predicted["swapped"] == [flip[p] for p in predicted["given"]]
    record = json.loads((tmp_path / "given" / "hf_transfer_config.json").read_text())["provenance"]
    assert record["train_samples"] == 0 and record["head_fit"].startswith("zero-shot")
    card = (tmp_path / "given" / "README.md").read_text()
    assert "No labelled example was trained on" in card and "'sport': 'sports and games'" in card


def test_zero_shot_refuses_what_it_cannot_do(tmp_path):
    from hf_transfer.exceptions import ConfigError
    from hf_transfer.recipe import parse_config

    data = _topic_csv(tmp_path)
    with pytest.raises(ConfigError, match="trains nothing"):
        parse_config(["--train_file", str(data), "--train_samples_per_class", "0", "--strategy", "full"],
                     task="text-classification")  # fmt: skip
    with pytest.raises(ConfigError, match="text-classification only"):
        parse_config(["--train_samples_per_class", "0"], task="image-classification")
    with pytest.raises(ConfigError, match="--label_template describes each label in text"):
        parse_config(["--label_template", "about {}"], task="image-classification")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sport": "sports", "cooking": "food"}))
    with pytest.raises(ConfigError, match=r"no description for \['weather'\]"):
        _run(["--model_name_or_path", "builtin:all-MiniLM-L6-v2", "--train_file", str(data),
              "--train_samples_per_class", "0", "--label_descriptions", str(bad), "--train_val_split", "0.25",
              "--output_dir", str(tmp_path / "out")])  # fmt: skip


def test_label_descriptions_join_a_few_shot_runs_examples(tmp_path, tiny_bert_dir, monkeypatch):
    """With labelled examples, each class's description is 2 more examples of it (SetFit's templated examples):
    in every batch of the contrastive phase and in the closed-form head's fit, never counted as labelled, said in
    the record, the log line and the card; where the head is trained by SGD the flag is refused, not ignored."""
    from hf_transfer.exceptions import ConfigError
    from hf_transfer.training import cached_head, contrastive

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    batches, fits = [], []
    real_loss, real_fit = contrastive.pairwise_cosine_loss, cached_head.fit_linear_head

    def loss(embeddings, labels):
        batches.append(labels.tolist())
        return real_loss(embeddings, labels)

    def fit(features, labels, *args, **kwargs):
        fits.append((features, labels))
        return real_fit(features, labels, *args, **kwargs)

    monkeypatch.setattr(contrastive, "pairwise_cosine_loss", loss)
    monkeypatch.setattr(cached_head, "fit_linear_head", fit)
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text(json.dumps({"pos": "a good film", "neg": "a bad film"}))
    out = tmp_path / "out"
    _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--label_descriptions",
          str(descriptions), "--contrastive_epochs", "2", "--output_dir", str(out)])  # fmt: skip
    anchors = [0, 0, 1, 1]  # two of each class, in label order
    assert len(batches) == 2 and all(len(b) == 20 and b[-4:] == anchors for b in batches)
    features, labels = fits[0]
    assert len(labels) == 20 and list(labels[-4:]) == anchors and np.abs(features[-4:]).sum() > 0
    assert np.allclose(features[-4], features[-3]) and not np.allclose(features[-3], features[-2])
    saved = json.loads((out / "hf_transfer_config.json").read_text())
    record = saved["provenance"]
    assert record["train_samples"] == 16 and "(2 steps, 380 pairs)" in record["body_phase"]  # 20 × 19 / 2 a step
    assert "'pos': 'a good film'" in record["label_anchors"] and "every batch" in record["label_anchors"]
    assert "on 16 examples and the 2 label descriptions (2 copies of each)" in record["chosen_automatically_line"]
    assert "in batches of 16 and the 4 label-description examples in each (2 steps" in record["body_phase"]
    assert "Besides the labelled examples, it trained on the label descriptions" in (out / "README.md").read_text()
    with pytest.raises(ConfigError) as refused:
        _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--label_template",
              "a {} film", "--strategy", "full", "--output_dir", str(tmp_path / "full")])  # fmt: skip
    assert "--strategy full trains its head by SGD" in str(refused.value) and "\n" not in str(refused.value)


def test_label_examples_switch_the_label_names_on_and_off(tmp_path, tiny_bert_dir, monkeypatch):
    """``--label_examples true`` with nothing else describing the labels takes their names in SetFit's template;
    ``false`` beside a description is a contradiction, refused; the flags are for text only."""
    from hf_transfer.exceptions import ConfigError
    from hf_transfer.recipe import parse_config

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    data = write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))
    out = tmp_path / "names"
    _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--label_examples", "true",
          "--contrastive_epochs", "1", "--output_dir", str(out)])  # fmt: skip
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert "'pos': 'This sentence is pos'" in record["label_anchors"]
    with pytest.raises(ConfigError, match="--label_examples false and --label_template contradict each other"):
        parse_config(["--train_file", str(data), "--label_examples", "false", "--label_template", "a {}"],
                     task="text-classification")  # fmt: skip
    with pytest.raises(ConfigError, match="--label_examples describes each label in text"):
        parse_config(["--label_examples", "true"], task="image-classification")


def test_a_strategy_that_chooses_on_validation_is_refused_without_one(tmp_path, monkeypatch):
    from hf_transfer.exceptions import ConfigError

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_imagefolder(tmp_path / "colours", per_class=5)
    with pytest.raises(ConfigError, match="wise_ft chooses on the validation split"):
        _run(["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32",
              "--train_dir", str(data), "--strategy", "full+wise_ft", "--output_dir", str(tmp_path / "out")],
             task="image-classification")  # fmt: skip
