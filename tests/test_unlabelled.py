"""Unlabelled data: where it comes from, what is kept out of it, and self-training on cached features."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import COLOURS, NEGATIVE, POSITIVE, make_image, write_imagefolder, write_text_csv


def _run(argv: list[str], task: str = "text-classification"):
    import hf_transfer as ht
    from hf_transfer.recipe import parse_config

    return ht.fine_tune(parse_config(argv, task=task))


# ----------------------------------------------------------------------------------------- choosing pseudo-labels


def test_pseudo_labels_are_class_balanced_and_capped():
    """Five examples predicted as class 0, two as class 1, one below the threshold: each class gets the same count
    (the smaller class's two), its most probable first; a cap of one takes one of each."""
    from hf_transfer.training.self_training import select_pseudo_labels

    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.95, 0.05], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9],
                      [0.45, 0.55]])  # fmt: skip
    indices, labels = select_pseudo_labels(probs, np.array([0, 1]), threshold=0.6, per_class=10)
    assert indices.tolist() == [2, 0, 6, 5] and labels.tolist() == [0, 0, 1, 1]  # row 7 (0.55) is below 0.6
    indices, labels = select_pseudo_labels(probs, np.array([0, 1]), threshold=0.6, per_class=1)
    assert indices.tolist() == [2, 6] and labels.tolist() == [0, 1]
    # a class nothing is confidently predicted as: no class gets any (none may swamp the rest)
    indices, _ = select_pseudo_labels(probs[:5], np.array([0, 1]), threshold=0.6, per_class=10)
    assert len(indices) == 0


def _clusters(seed: int = 0, labelled: int = 3, unlabelled: int = 200):
    """Two Gaussian blobs at x = ±2 (the classes) with a wide, uninformative second coordinate."""
    rng = np.random.default_rng(seed)

    def draw(n: int, label: int) -> np.ndarray:
        return np.column_stack([rng.normal(4 * label - 2, 0.7, n), rng.normal(0, 3, n)])

    features = np.concatenate([draw(labelled, 0), draw(labelled, 1)])
    labels = np.repeat([0, 1], labelled)
    pool_labels = rng.integers(0, 2, unlabelled)
    pool = np.concatenate([draw(1, int(k)) for k in pool_labels])
    return features, labels, pool, pool_labels


def test_a_round_adds_nothing_when_no_prediction_is_confident():
    """A threshold no prediction reaches: round 1 adds nothing, self-training stops, and the head is round 0's."""
    from hf_transfer.training.linear_head import fit_linear_head
    from hf_transfer.training.self_training import SelfTrainingSettings, self_train

    features, labels, pool, truth = _clusters()
    settings = SelfTrainingSettings(rounds=3, threshold=0.999999, per_class=10)
    head, report = self_train(features, labels, pool, truth, ["a", "b"], 1e-3, settings)
    assert [r.added for r in report.rounds] == [{"a": 0, "b": 0}, {"a": 0, "b": 0}] and report.kept == 0
    assert report.rounds[1].confident == 0
    alone = fit_linear_head(features, labels, 2, 1e-3)
    assert np.allclose(head.weight, alone.weight) and np.allclose(head.bias, alone.bias)


def test_self_training_grows_class_balanced_and_reports_pseudo_label_accuracy():
    """Well-separated clusters: every round adds r x per_class per class, the pseudo-labels' accuracy is measured
    against the pool's hidden labels, and every round is kept (the labelled examples stay right)."""
    from hf_transfer.training.self_training import SelfTrainingSettings, self_train

    features, labels, pool, truth = _clusters()
    settings = SelfTrainingSettings(rounds=3, threshold=0.0, per_class=20)
    head, report = self_train(features, labels, pool, truth, ["a", "b"], 1.0, settings)
    assert [r.added for r in report.rounds] == [{"a": n, "b": n} for n in (0, 20, 40, 60)]
    assert all(r.pseudo_label_accuracy == 1.0 for r in report.rounds[1:])  # the most confident are far from 0
    assert report.kept == 3 and "cross-validat" in report.why
    # the labelled examples are right in every fold after every round: the check is blind, and says so
    assert [r.labelled_cv_accuracy for r in report.rounds] == [1.0] * 4
    assert "every round scored 1.000 in 3-fold cross-validation" in report.why and "could not tell" in report.why
    predicted = (pool @ head.weight.T + head.bias).argmax(axis=1)
    assert (predicted == truth).mean() > 0.95
    # the unknown labels (-1) are not compared with
    _, report = self_train(features, labels, pool, np.full(len(pool), -1), ["a", "b"], 1.0, settings)
    assert report.rounds[1].pseudo_label_accuracy is None


def test_the_rounds_kept_are_the_last_the_labelled_folds_score_best():
    """Overlapping classes (means ±0.6, unit spread), 5 labelled a class: rounds 2 and 3 make the held-out labelled
    examples worse to predict, so the run keeps round 1 (tied with round 0: ties go to more rounds) and says why."""
    from hf_transfer.training.self_training import SelfTrainingSettings, self_train

    rng = np.random.default_rng(2)

    def draw(n: int, label: int) -> np.ndarray:
        return np.column_stack([rng.normal(1.2 * label - 0.6, 1.0, n), rng.normal(0, 3, n)])

    features, labels = np.concatenate([draw(5, 0), draw(5, 1)]), np.repeat([0, 1], 5)
    truth = rng.integers(0, 2, 200)
    pool = np.concatenate([draw(1, int(k)) for k in truth])
    _, report = self_train(features, labels, pool, truth, ["a", "b"], 1.0, SelfTrainingSettings(3, 0.0, 10))
    assert [r.labelled_cv_accuracy for r in report.rounds] == [0.7, 0.7, 0.6, 0.5] and report.kept == 1
    assert report.why.startswith("the best 5-fold cross-validated accuracy on the labelled examples, 0.700")


# ----------------------------------------------------------------------------------------------- the data side


def _sentiment(tmp_path, rows=None):
    rows = rows or [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    return write_text_csv(tmp_path / "few.csv", rows, ("text", "label"))


def test_text_self_training_end_to_end_keeps_evaluation_rows_out(tmp_path, tiny_bert_dir, monkeypatch):
    """A cached linear probe with an unlabelled file that repeats validation and training texts: those are dropped
    (an evaluation example never comes back as a training one), the rest are encoded once and pseudo-labelled, and
    the record, the Chosen line and the card say what each round did."""
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    train = _sentiment(tmp_path)
    held_out = ["a moving and beautiful story", "an awful waste of time"]
    validation = write_text_csv(tmp_path / "val.csv", list(zip(held_out, ("pos", "neg"))), ("text", "label"))
    fresh = [f"{word} film number {i}" for i in range(6) for word in ("great", "awful")]
    unlabelled = [(held_out[0],), (held_out[1],), (POSITIVE[0],), *[(t,) for t in fresh]]
    pool = write_text_csv(tmp_path / "pool.csv", unlabelled, ("text",))
    out = tmp_path / "out"
    _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train), "--validation_file",
          str(validation), "--strategy", "linear_probe", "--pooling", "mean", "--unlabeled_file", str(pool),
          "--pseudo_labels_per_class", "2", "--self_training_rounds", "2", "--output_dir", str(out)])  # fmt: skip
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    report = record["self_training"]
    assert report["unlabeled_examples"] == len(fresh)  # the 2 validation texts and 1 training text dropped
    assert record["unlabeled_source"] == f"--unlabeled_file {pool}"
    for entry in report["per_round"]:  # balanced and capped (a random tiny model predicts few of one class)
        assert entry["added"]["neg"] == entry["added"]["pos"] <= 2 * entry["round"]
    assert report["per_round"][1]["added"]["pos"] >= 1
    assert record["frozen_features"]["frozen_features_encoded"] == 16 + 2 + len(fresh)  # each row once
    assert "self-training on 12 unlabelled examples" in record["chosen_automatically_line"]
    card = (out / "README.md").read_text()
    assert "Self-trained on 12 unlabelled examples" in card and "reinforce a bias" in card


def test_pseudo_labels_feed_the_contrastive_pairs(tmp_path, tiny_bert_dir, monkeypatch):
    """With --contrastive_pseudo_labels the body trains a second phase on the pairs of the labelled and the
    pseudo-labelled examples: about as many steps as the first phase, the pseudo-labels those of the self-training
    rounds cross-validation kept on the tuned body's features (here its one round: the labelled folds score the
    same with it, and ties keep more rounds); the body then differs from the run without it, and the record says
    what the phase did."""
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    train = _sentiment(tmp_path)
    texts = [(f"{word} film number {i}",) for i in range(8) for word in ("great", "awful")]
    pool = write_text_csv(tmp_path / "pool.csv", texts, ("text",))
    common = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(train), "--unlabeled_file", str(pool),
              "--strategy", "contrastive", "--contrastive_epochs", "3", "--contrastive_batch_size", "8",
              "--pseudo_label_threshold", "0", "--pseudo_labels_per_class", "2",
              "--self_training_rounds", "1"]  # fmt: skip
    _run([*common, "--output_dir", str(tmp_path / "without")])
    _run([*common, "--contrastive_pseudo_labels", "--output_dir", str(tmp_path / "with")])
    phase = json.loads((tmp_path / "with" / "hf_transfer_config.json").read_text())["provenance"]["body_phase"]
    first, _, second = phase.partition("; then ")
    assert "(6 steps" in first  # 3 epochs of 16 labelled examples in batches of 8
    kept = json.loads((tmp_path / "with" / "hf_transfer_config.json").read_text())["provenance"]["self_training"]
    assert second.startswith("6 steps on the pairs of the labelled and 4 pseudo-labelled examples"), second
    assert kept is not None  # the usual rounds run again on the features the cache encodes after the phase
    weights = [load_file(tmp_path / run / "model.safetensors") for run in ("without", "with")]
    name = next(k for k in weights[0] if "layer.0.attention.self.query.weight" in k)
    assert not torch.equal(weights[0][name], weights[1][name])  # the second phase moved the body


def test_the_pseudo_labelled_phase_encodes_longest_first_and_every_row_keeps_its_features(tmp_path, tiny_bert_dir):
    """The phase encodes the labelled and the unlabelled texts in batches sorted by length (each pads to about its own
    texts' length); the features come back in the dataset's order, each the one the text gets when encoded alone."""
    import torch

    import hf_transfer as ht
    from hf_transfer.models.prefix import split_model
    from hf_transfer.recipe import parse_config
    from hf_transfer.training.contrastive import _encode

    argv = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(_sentiment(tmp_path)), "--strategy",
            "linear_probe", "--cache_frozen_features", "False", "--output_dir", str(tmp_path / "out")]  # fmt: skip
    task = ht.prepare(parse_config(argv, task="text-classification")).task
    split = split_model(task.model.eval(), task.view, None)
    dataset = task.train_dataset
    assert len({len(ids) for ids in dataset["input_ids"]}) > 2  # lengths to sort
    features = _encode(split, dataset, task.data_collator, "cpu", batch_size=3)
    with torch.no_grad():
        for i in range(len(dataset)):
            alone = task.data_collator([dataset[i]])
            alone.pop("labels")
            assert np.allclose(features[i], split.encode(alone)["features"][0].numpy(), atol=1e-5), i


def test_empty_labels_become_unlabelled_only_when_asked(tmp_path, tiny_bert_dir, monkeypatch):
    from hf_transfer.exceptions import DataError

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    rows = [(t, "pos") for t in POSITIVE[:4] * 2] + [(t, "neg") for t in NEGATIVE[:4] * 2]
    rows += [("an unseen film", ""), ("another one", "")]
    data = _sentiment(tmp_path, rows)
    argv = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--strategy", "linear_probe",
            "--pooling", "mean"]  # fmt: skip
    with pytest.raises(DataError, match=r"missing labels in 2 training row\(s\) \(16, 17\).*--empty_labels unlabeled"):
        _run([*argv, "--output_dir", str(tmp_path / "refused")])
    out = tmp_path / "out"
    _run([*argv, "--empty_labels", "unlabeled", "--output_dir", str(out)])
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert record["train_samples"] == 16 and record["self_training"]["unlabeled_examples"] == 2


def test_a_body_trained_by_sgd_self_trains_through_the_trainer(tmp_path, tiny_bert_dir, monkeypatch):
    """``--strategy full`` with unlabelled texts: after its training the model pseudo-labels them, and the Trainer
    trains on with them added (one round by default); the record says so and that the round is not cross-validated."""
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    texts = [(f"{word} film number {i}",) for i in range(4) for word in ("fine", "poor")]
    pool = write_text_csv(tmp_path / "pool.csv", texts, ("text",))
    out = tmp_path / "out"
    result = _run(["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(_sentiment(tmp_path)),
                   "--strategy", "full", "--max_steps", "2", "--unlabeled_file", str(pool),
                   "--pseudo_labels_per_class", "2", "--output_dir", str(out)])  # fmt: skip
    report = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]["self_training"]
    assert report["rounds"] == 1 and report["unlabeled_examples"] == 8 and "by SGD" in report["why"]
    added = report["per_round"][1]["added"]
    assert added["neg"] == added["pos"] <= 2
    assert report["rounds_kept"] == (1 if added["pos"] else 0)
    assert result.trainer.state.global_step == 2  # the round's own run of the same length


def test_what_cannot_self_train_is_refused_in_one_line(tmp_path, tiny_bert_dir, monkeypatch):
    from hf_transfer.exceptions import ConfigError, DataError
    from hf_transfer.recipe import parse_config

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = _sentiment(tmp_path)
    good = write_text_csv(tmp_path / "good.csv", [("fine film",), ("poor film",)], ("text",))
    pool = write_text_csv(tmp_path / "pool.csv", [("fine film",), ("",)], ("text",))
    argv = ["--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data), "--train_val_split", "0.25"]
    with pytest.raises(ConfigError, match="more than one linear layer .* pass --pooling mean"):
        _run([*argv, "--strategy", "linear_probe", "--unlabeled_file", str(good),
              "--output_dir", str(tmp_path / "o1")])  # fmt: skip
    with pytest.raises(DataError, match="Row 1 of the unlabelled data: column .text. is missing"):
        _run([*argv, "--unlabeled_file", str(pool), "--output_dir", str(tmp_path / "o2")])
    with pytest.raises(ConfigError, match="needs unlabelled examples"):
        parse_config([*argv, "--self_training_rounds", "2"], task="text-classification")
    with pytest.raises(ConfigError, match="one source of unlabelled examples"):
        parse_config([*argv, "--unlabeled_file", str(pool), "--empty_labels", "unlabeled"], task="text-classification")
    with pytest.raises(ConfigError, match="--unlabeled_file: file '/no/such.csv' does not exist"):
        parse_config([*argv, "--unlabeled_file", "/no/such.csv"], task="text-classification")
    with pytest.raises(ConfigError, match="--unlabeled_dir is a folder of images"):
        parse_config([*argv, "--unlabeled_dir", str(tmp_path)], task="text-classification")


def test_unlabelled_images_from_a_nested_folder(tmp_path, monkeypatch):
    """A nested folder of unlabelled images (folder names are not labels) with the image default (full): the images
    are decoded once and pseudo-labelled after training, and a copy of a training image is dropped."""
    import shutil

    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    data = write_imagefolder(tmp_path / "colours", per_class=4)
    nested = tmp_path / "pool" / "a" / "b"
    nested.mkdir(parents=True)
    for i, colour in enumerate(COLOURS.values()):
        for j in range(3):
            make_image(colour, seed=1000 + 10 * i + j).save(nested / f"{i}{j}.png")  # seeds no training image has
    shutil.copy(data / "red" / "000.png", tmp_path / "pool" / "copy.png")
    out = tmp_path / "out"
    _run(["--model_name_or_path", "test_efficientnet", "--from_scratch", "--image_size", "32", "--train_dir",
          str(data), "--unlabeled_dir", str(tmp_path / "pool"), "--pseudo_labels_per_class", "1", "--max_steps",
          "2", "--output_dir", str(out)], task="image-classification")  # fmt: skip
    record = json.loads((out / "hf_transfer_config.json").read_text())["provenance"]
    assert record["strategy"] == "freeze" and record["self_training"]["rounds"] == 1  # the default at 4 per class
    assert record["self_training"]["unlabeled_examples"] == 9  # the copy of a training image is not one of them
