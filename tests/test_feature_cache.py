"""The frozen-feature cache: same training signal as the uncached model, encoded once, keyed by everything it depends
on, robust to corruption and to an unwritable cache, and invisible in the saved model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import hf_transfer as ht
from hf_transfer.training.prefix_cache import collate_cached

from .conftest import NEGATIVE, POSITIVE, run_command, write_imagefolder, write_text_csv


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def colours(tmp_path) -> Path:
    return write_imagefolder(tmp_path / "colours", per_class=10)


@pytest.fixture
def reviews(tmp_path) -> Path:
    rows = [(text, "pos") for text in POSITIVE * 5] + [(text, "neg") for text in NEGATIVE * 5]
    return write_text_csv(tmp_path / "reviews.csv", rows, ("text", "label"))


def image_config(tmp_path, data: Path, strategy="linear_probe", cache=True, image_size=32, seed=0, **strategy_args):
    # from_scratch: the "checkpoint" is the random init of --seed; the validation hold-out stays fixed (split_seed)
    return ht.RecipeConfig(
        model=ht.ModelArguments(model_name_or_path="test_efficientnet", from_scratch=True, drop_rate=0.0),
        data=ht.DataArguments(
            train_dir=str(data), image_size=image_size, no_augment=True, split_seed=0, train_val_split=0.25
        ),
        strategy=ht.StrategyArguments(strategy=strategy, **strategy_args),
        run=ht.RunArguments(cache_frozen_features=cache),
        training=ht.default_training_arguments(
            output_dir=str(tmp_path / "out"), per_device_train_batch_size=5, seed=seed
        ),
    )


def text_config(tmp_path, data: Path, tiny_bert_dir, strategy="linear_probe", cache=True, length=24, **settings):
    return ht.RecipeConfig(
        task="text-classification",
        model=ht.ModelArguments(model_name_or_path=str(tiny_bert_dir), pooling="mean"),
        data=ht.DataArguments(train_file=str(data), max_seq_length=length),
        strategy=ht.StrategyArguments(strategy=strategy, **settings),
        run=ht.RunArguments(cache_frozen_features=cache),
        training=ht.default_training_arguments(
            "text-classification", output_dir=str(tmp_path / "out"), per_device_train_batch_size=6
        ),
    )


def counts(prepared) -> tuple[int, int]:
    features = prepared.task.record.frozen_features
    return (features.frozen_features_encoded, features.frozen_features_reused) if features else (-1, -1)


def loss_and_head_gradients(prepared, batch) -> tuple[float, list[torch.Tensor]]:
    model = prepared.model
    model.train()
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks in both runs
    loss = model(**batch).loss
    loss.backward()
    head = dict(model.named_parameters())
    return float(loss), [head[name].grad.clone() for name in prepared.context.view.head]


def first_rows(dataset, collate, count: int = 6):
    return collate([dataset[i] for i in range(count)])


@pytest.mark.parametrize(
    "strategy, settings",
    [("linear_probe", {}), ("freeze", {"freeze_blocks": 2, "train_bn": False})],
)
def test_image_cached_and_uncached_give_the_same_loss_and_head_gradients(tmp_path, colours, strategy, settings):
    cached = ht.prepare(image_config(tmp_path, colours, strategy, **settings))
    assert counts(cached)[0] > 0
    uncached = ht.prepare(image_config(tmp_path, colours, strategy, cache=False, **settings))
    assert counts(uncached) == (-1, -1)
    loss_c, grads_c = loss_and_head_gradients(cached, first_rows(cached.task.train_dataset, collate_cached))
    plain = first_rows(uncached.task.train_dataset, uncached.task.data_collator)
    loss_u, grads_u = loss_and_head_gradients(uncached, plain)
    assert loss_c == pytest.approx(loss_u, abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads_c, grads_u))


@pytest.mark.parametrize("strategy, settings", [("linear_probe", {}), ("freeze", {"freeze_blocks": 1})])
def test_text_cached_and_uncached_give_the_same_loss_and_head_gradients(
    tmp_path, reviews, tiny_bert_dir, strategy, settings
):
    cached = ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir, strategy, **settings))
    uncached = ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir, strategy, cache=False, **settings))
    loss_c, grads_c = loss_and_head_gradients(cached, first_rows(cached.task.train_dataset, collate_cached))
    plain = first_rows(uncached.task.train_dataset, uncached.task.data_collator)
    loss_u, grads_u = loss_and_head_gradients(uncached, plain)
    assert loss_c == pytest.approx(loss_u, abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads_c, grads_u))


def test_a_second_run_reuses_and_each_key_component_reencodes(tmp_path, colours):
    total = counts(ht.prepare(image_config(tmp_path, colours)))[0]
    assert total == 30  # every example of both splits, encoded once
    assert counts(ht.prepare(image_config(tmp_path, colours))) == (0, 30)
    assert counts(ht.prepare(image_config(tmp_path, colours, seed=1)))[0] == 30  # other weights
    assert counts(ht.prepare(image_config(tmp_path, colours, image_size=40)))[0] == 30  # other preprocessing
    other = write_imagefolder(tmp_path / "more", per_class=11)
    assert counts(ht.prepare(image_config(tmp_path, other)))[0] == 33  # other data
    depth1 = counts(ht.prepare(image_config(tmp_path, colours, "freeze", freeze_blocks=1, train_bn=False)))
    depth2 = counts(ht.prepare(image_config(tmp_path, colours, "freeze", freeze_blocks=2, train_bn=False)))
    assert depth1[0] == depth2[0] == 30  # another prefix depth


def test_text_max_seq_length_is_part_of_the_key(tmp_path, reviews, tiny_bert_dir):
    assert counts(ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir)))[0] == 40
    assert counts(ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir))) == (0, 40)
    assert counts(ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir, length=16)))[0] == 40


def test_a_subset_of_the_same_data_reuses_its_rows(tmp_path, colours):
    """What a transfer study does: nested subsets of one pool, one evaluation set; only new rows are encoded."""
    small = image_config(tmp_path, colours)
    small.data.train_samples_per_class = 3
    first = ht.prepare(small)
    held_out = len(first.task.eval_dataset)
    assert len(first.task.train_dataset) == 9 and counts(first) == (9 + held_out, 0)
    large = image_config(tmp_path, colours)
    large.data.train_samples_per_class = 6
    assert counts(ht.prepare(large)) == (9, 9 + held_out)  # 9 new training rows; the first 9 and validation reused


def test_a_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, colours, caplog):
    ht.prepare(image_config(tmp_path, colours))
    for tensors in (tmp_path / "cache" / "features").glob("*/*.safetensors"):
        data = bytearray(tensors.read_bytes())
        data[-8:] = b"\xff" * 8
        tensors.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        again = ht.prepare(image_config(tmp_path, colours))
    assert counts(again)[0] == 30
    assert any("corrupt" in record.getMessage() for record in caplog.records)


def test_an_unwritable_cache_falls_back_to_memory_with_one_warning(tmp_path, colours, monkeypatch, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(blocker / "cache"))
    with caplog.at_level(logging.WARNING):
        prepared = ht.prepare(image_config(tmp_path, colours))
    assert counts(prepared) == (30, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "memory" in r.getMessage()]
    assert len(warnings) == 1


def test_the_saved_model_predicts_what_the_cache_evaluated(tmp_path, colours):
    import timm

    config = image_config(tmp_path, colours)
    config.training.num_train_epochs = 3
    config.training.learning_rate = 0.05
    result = ht.fine_tune(config)
    assert result.metrics["frozen_features_encoded"] == 30
    recorded = json.loads((Path(result.output_dir) / "eval_predictions.json").read_text())["predictions"]
    model = timm.create_model(f"local-dir:{result.output_dir}", pretrained=True).eval()
    validation = result.trainer.eval_dataset  # cached rows, in the validation split's order
    assert len(validation) == len(recorded)
    prepared_again = ht.prepare(image_config(tmp_path, colours, cache=False))
    raw = prepared_again.task.eval_dataset
    pixels = torch.stack([raw[i]["pixel_values"] for i in range(len(raw))])
    with torch.no_grad():
        predicted = model(pixels).argmax(dim=-1).tolist()
    assert predicted == recorded


def test_cache_list_and_clear(tmp_path, colours, in_process):
    from hf_transfer.cli import main

    ht.prepare(image_config(tmp_path, colours))
    env = {"HF_TRANSFER_CACHE": str(tmp_path / "cache")}
    listed = run_command(["hf-transfer", "cache", "list"], **env)  # once as a user runs it
    assert listed.returncode == 0 and "2 entries" in listed.stdout and "train rows" in listed.stdout
    cleared = in_process(main, ["cache", "clear"])  # then in-process (the same HF_TRANSFER_CACHE, set above)
    assert cleared.returncode == 0 and "freed" in cleared.stdout and "(2 entries)" in cleared.stdout
    assert not any((tmp_path / "cache" / "features").glob("*/*.safetensors"))
    again = in_process(main, ["cache", "list"])
    assert "0 entries" in again.stdout


def test_text_is_encoded_longest_first_without_padding_columns_and_every_row_keeps_its_features(
    tmp_path, reviews, tiny_bert_dir
):
    """The cache encodes texts sorted by length, each batch cut to its longest text (padding to --max_seq_length was
    most of the work); every row still gets its own features, the ones the uncached model pools for it."""
    from hf_transfer.models.prefix import without_padding_columns

    ids = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 9, 102, 0, 0, 0]])
    right = {"input_ids": ids, "attention_mask": (ids > 0).long(), "token_type_ids": torch.zeros_like(ids)}
    cut = without_padding_columns(right)
    assert {k: v.shape for k, v in cut.items()} == {k: (2, 4) for k in right} and cut["input_ids"][1].tolist() == [
        101, 9, 102, 0,
    ]  # fmt: skip
    left = {k: v.flip(1) for k, v in right.items()}
    assert without_padding_columns(left) is left  # left padding: a real token in the last column, kept as it is

    cached = ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir))
    uncached = ht.prepare(text_config(tmp_path, reviews, tiny_bert_dir, cache=False))
    features = cached.task.train_dataset.tensors["features"]
    model = uncached.model.eval()
    with torch.no_grad():
        for i in range(len(uncached.task.train_dataset)):
            row = uncached.task.data_collator([{**uncached.task.train_dataset[i]}])
            row.pop("labels")
            hidden = model.encoder(**row).last_hidden_state
            pooled = (hidden * row["attention_mask"].unsqueeze(-1)).sum(1) / row["attention_mask"].sum()
            assert torch.allclose(features[i], pooled[0], atol=1e-5), i
