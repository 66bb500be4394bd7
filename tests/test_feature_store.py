"""The persistent store of frozen-prefix features: round trips, keys, corruption, an unwritable cache, and races
between runs encoding the same rows through the real path (``cached_features`` under the store's file lock)."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from hf_transfer.training import feature_store
from hf_transfer.training.feature_store import FeatureStore, feature_key, tensor_content_hash
from hf_transfer.training.prefix_cache import cached_features

LOGGER = "hf_transfer.training.feature_store"
PACKAGE_DIR = Path(feature_store.__file__).resolve().parent.parent
BASE = {"model": "a" * 64, "prefix": "blocks.0-3", "preprocessing": {"size": 24}, "data": "fp1", "dtype": "float32"}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeatureStore:
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "cache"))
    return FeatureStore()


def features(rows: int = 16, dim: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(rows, dim, generator=generator), "ids": torch.arange(rows)}


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def entry_file(store: FeatureStore, key) -> Path:
    return store.root / key.digest / feature_store.TENSORS_FILE


def encode_rows(calls: list[list[int]]):
    """An encoder of row positions (feature = the position, as cached_features' callers pass them) that records its
    calls: what a frozen prefix would do, minus the model."""

    def encode(positions: list[int]) -> dict[str, torch.Tensor]:
        calls.append(list(positions))
        return {"features": torch.tensor(positions, dtype=torch.float32)[:, None].repeat(1, 4)}

    return encode


def cached(store: FeatureStore, items: list[int], calls: list[list[int]]) -> tuple[torch.Tensor, int, int]:
    """(each item's feature row, rows encoded now, rows reused) through the path a training run takes."""
    features, index, encoded, reused = cached_features(store, BASE, items, encode_rows(calls), "float32", "rows")
    return features["features"][index], encoded, reused


def test_round_trip_and_float16_halves_the_file(store, tmp_path):
    key, half_key = feature_key(**BASE), feature_key(**{**BASE, "dtype": torch.float16})
    tensors = features(64, 128)
    assert store.load(key) is None
    store.save(key, tensors, "train split")
    assert store.root == tmp_path / "cache" / "features"
    loaded = FeatureStore().load(key)  # a later run
    assert loaded.keys() == tensors.keys() and all(torch.equal(loaded[n], tensors[n]) for n in tensors)

    returned = store.save(half_key, tensors, "train split", dtype=torch.float16)
    half = store.load(half_key)
    assert half["image"].dtype == torch.float16 and half["ids"].dtype == torch.int64  # only floating tensors cast
    assert torch.equal(returned["image"], half["image"])  # a run that encodes sees what later runs load
    torch.testing.assert_close(half["image"].float(), tensors["image"], atol=1e-2, rtol=1e-3)
    assert entry_file(store, half_key).stat().st_size < 0.55 * entry_file(store, key).stat().st_size


def test_float16_keeps_a_tensor_it_would_overflow(store, caplog):
    key = feature_key(**BASE)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.save(key, {"big": torch.tensor([1.0, 1e6]), "small": torch.ones(2)}, dtype=torch.float16)
    loaded = store.load(key)
    assert loaded["big"].dtype == torch.float32 and loaded["small"].dtype == torch.float16
    assert len(warnings_in(caplog)) == 1


def test_every_key_part_is_part_of_the_digest(store):
    key = feature_key(**BASE)
    assert key == feature_key(**dict(reversed(BASE.items())))  # order of parts does not matter
    assert key.parts == BASE and len(key.digest) == 64
    store.save(key, features())
    for part, other in [("model", "b" * 64), ("prefix", "blocks.0-4"), ("data", "fp2"), ("dtype", "float16")]:
        changed = feature_key(**{**BASE, part: other})
        assert changed.digest != key.digest and store.load(changed) is None
    assert feature_key(**{**BASE, "preprocessing": {"size": 32}}).digest != key.digest
    assert feature_key(dtype=torch.float16).parts == {"dtype": "float16"}
    with pytest.raises(TypeError):
        feature_key(model=object())


@pytest.mark.parametrize("damage", ["flip", "truncate", "tamper_key", "garbage_meta"])
def test_damaged_entry_is_a_miss_with_one_warning_and_is_deleted(store, caplog, damage):
    key = feature_key(**BASE)
    store.save(key, features(), "train split")
    file, meta_file = entry_file(store, key), store.root / key.digest / feature_store.META_FILE
    data = bytearray(file.read_bytes())
    if damage == "flip":
        data[-20:-10] = bytes(b ^ 0xFF for b in data[-20:-10])
        file.write_bytes(bytes(data))
    elif damage == "truncate":
        file.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "tamper_key":
        meta = json.loads(meta_file.read_text())
        meta["key"]["data"] = "another split"
        meta_file.write_text(json.dumps(meta))
    else:
        meta_file.write_text("{not json")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load(key) is None
    assert len(warnings_in(caplog)) == 1 and "corrupt" in warnings_in(caplog)[0]
    assert "\n" not in warnings_in(caplog)[0]
    assert not (store.root / key.digest).exists()
    assert [p.name for p in store.root.iterdir() if not p.name.endswith(".lock")] == []
    store.save(key, features(), "train split")  # the caller re-encodes
    assert torch.equal(store.load(key)["image"], features()["image"])


@pytest.mark.parametrize("how", ["default_root", "explicit_root"])
def test_unwritable_cache_keeps_features_in_memory(tmp_path, monkeypatch, caplog, how):
    (tmp_path / "afile").write_text("a file where the cache folder should be")  # fails even for root
    monkeypatch.setenv("HF_TRANSFER_CACHE", str(tmp_path / "afile" / "cache"))
    store = FeatureStore() if how == "default_root" else FeatureStore(tmp_path / "afile" / "cache")
    key, calls = feature_key(**BASE), []
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.save(key, features(), "train split")
        loaded, encoded, _ = cached(store, [7, 8, 9], calls)  # the real path: the lock is skipped, not a crash
        again, encoded_again, reused = cached(store, [9, 8, 7], calls)
    assert torch.equal(store.load(key)["image"], features()["image"])
    assert (encoded, encoded_again, reused) == (3, 0, 3) and [sorted(c) for c in calls] == [[0, 1, 2]]
    assert torch.equal(again, loaded.flip(0))
    (message,) = warnings_in(caplog)
    assert "afile" in message and "in memory" in message
    assert store.entries() == [] and FeatureStore(tmp_path / "afile" / "cache").load(key) is None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="chmod does not stop root")
def test_read_only_cache_folder(tmp_path, caplog):
    root = tmp_path / "ro"
    root.mkdir(mode=0o500)
    try:
        store = FeatureStore(root)
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            store.save(feature_key(**BASE), features())
        assert len(warnings_in(caplog)) == 1 and store.load(feature_key(**BASE)) is not None
    finally:
        root.chmod(0o700)


def test_disk_full_keeps_features_in_memory_and_leaves_no_temp_folder(store, monkeypatch, caplog):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", full)  # the store imports it where it writes
    key = feature_key(**BASE)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.save(key, features())
        store.save(feature_key(**{**BASE, "data": "fp2"}), features())
    (message,) = warnings_in(caplog)
    assert str(store.root) in message and "No space left" in message
    assert torch.equal(store.load(key)["image"], features()["image"])
    assert list(store.root.iterdir()) == []


def test_each_row_is_encoded_once_across_runs(store):
    calls: list[list[int]] = []
    first, encoded, reused = cached(store, [10, 11, 12], calls)
    assert (encoded, reused) == (3, 0) and [sorted(c) for c in calls] == [[0, 1, 2]]
    assert first[:, 0].tolist() == [0.0, 1.0, 2.0]
    second, encoded, reused = cached(store, [12, 13, 10, 13], calls)  # another subset: only row 13 is new
    assert (encoded, reused) == (1, 2) and calls[1:] == [[1]]
    assert second[:, 0].tolist() == [2.0, 1.0, 0.0, 1.0]  # rows 12 and 10 as first encoded, 13 at its position
    later, encoded, reused = cached(FeatureStore(), [13, 12, 11, 10], calls)  # a later run: nothing to encode
    assert (encoded, reused, len(calls)) == (0, 4, 2)
    assert later[:, 0].tolist() == [1.0, 2.0, 1.0, 0.0]


def test_two_threads_racing_encode_once(store, tmp_path):
    count, barrier, results = tmp_path / "count", threading.Barrier(2), []

    def run() -> None:
        other_process = FeatureStore()  # its own lock object and state, like another process
        barrier.wait()
        calls: list[list[int]] = []
        results.append((cached(other_process, [5, 6, 7], calls), calls))
        if calls:
            with open(count, "a") as handle:
                handle.write("encoded\n")

    real_save = FeatureStore.save

    def slow_save(self, *args, **kwargs):  # widen the window in which the other thread would encode too
        time.sleep(0.2)
        return real_save(self, *args, **kwargs)

    FeatureStore.save = slow_save
    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        FeatureStore.save = real_save
    assert count.read_text().splitlines() == ["encoded"]
    assert sorted((encoded, reused) for (_, encoded, reused), _ in results) == [(0, 3), (3, 0)]
    assert torch.equal(results[0][0][0], results[1][0][0])


# A fresh interpreter (what multiprocessing's spawn starts, like a study's cell), without hf_transfer/__init__.py: the
# stub package makes ``hf_transfer.training.prefix_cache`` import only what the training package needs.
CHILD = """
import os, sys, time, types, json
package_dir, root, count, go = sys.argv[1:]
package = types.ModuleType("hf_transfer")
package.__path__ = [package_dir]
sys.modules["hf_transfer"] = package
import torch
from hf_transfer.training.prefix_cache import cached_features
from hf_transfer.training.feature_store import FeatureStore

def encode(positions):
    with open(count, "a") as handle:
        handle.write(f"encoded {len(positions)}\\n")
    time.sleep(0.3)
    return {"x": torch.tensor(positions, dtype=torch.float32)}

store = FeatureStore(root)
print("ready", flush=True)
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.005)
features, index, encoded, reused = cached_features(store, {"k": "race"}, list(range(8)), encode, "float32", "race")
print(json.dumps({"encoded": encoded, "x": features["x"][index].tolist()}), flush=True)
"""


def test_two_processes_racing_encode_once(tmp_path):
    root, count, go = tmp_path / "cache", tmp_path / "count", tmp_path / "go"
    args = [sys.executable, "-c", CHILD, str(PACKAGE_DIR), str(root), str(count), str(go)]
    env = {**os.environ, "PYTHONPATH": ""}
    children = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    try:
        assert [child.stdout.readline().strip() for child in children] == ["ready", "ready"]
        go.touch()
        outputs = [json.loads(child.communicate(timeout=60)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert count.read_text().splitlines() == ["encoded 8"]
    assert sorted(o["encoded"] for o in outputs) == [0, 8]
    assert all(o["x"] == list(range(8)) for o in outputs)


def test_entries_and_clear(store):
    first, second = feature_key(**BASE), feature_key(**{**BASE, "data": "fp2"})
    store.save(first, features(8), "train split")
    store.save(second, features(32), "eval split")
    stale = store.root / f"{feature_store.TMP_PREFIX}abandoned"
    stale.mkdir()
    (stale / "partial").write_bytes(b"x" * 10)
    os.utime(stale / "partial", (0, 0))
    os.utime(stale, (0, 0))
    fresh = store.root / f"{feature_store.TMP_PREFIX}being-written"
    fresh.mkdir()
    (store.root / ("f" * 64)).mkdir()  # an unreadable entry: no meta.json

    entries = store.entries()
    assert [e.description for e in entries] == ["eval split", "train split"]  # newest first
    assert [e.digest for e in entries] == [second.digest, first.digest] and entries[0].key == second.parts
    assert all(e.size_bytes == sum(f.stat().st_size for f in e.path.iterdir()) for e in entries)
    assert entries[0].size_bytes > entries[1].size_bytes > 0

    listed = store.entries(unreadable=True)  # what `hf-transfer cache list` shows: every entry on disk
    assert {e.digest for e in listed} == {second.digest, first.digest, "f" * 64}
    assert next(e for e in listed if e.digest == "f" * 64).description.startswith("unreadable")

    assert store.clear([first.digest]) == entries[1].size_bytes + 10  # and the stale temporary folder
    assert store.load(first) is None and [e.digest for e in store.entries()] == [second.digest]
    assert fresh.exists() and not stale.exists()
    assert store.clear() == entries[0].size_bytes
    assert store.entries() == [] and store.load(second) is None and fresh.exists()
    with pytest.raises(ValueError):
        store.clear(["../elsewhere"])


def test_tensor_content_hash():
    weights = {"blocks.0.weight": torch.randn(4, 3), "blocks.0.bias": torch.zeros(4), "bn.mean": torch.ones(4)}
    reference = tensor_content_hash(weights.items())
    copies = {name: tensor.clone() for name, tensor in weights.items()}
    assert tensor_content_hash(copies.items()) == reference
    assert tensor_content_hash(reversed(list(copies.items()))) == reference  # iteration order does not matter
    copies["blocks.0.weight"][2, 1] += 1e-3
    assert tensor_content_hash(copies.items()) != reference
    renamed = {("stem." + n if n == "bn.mean" else n): t for n, t in weights.items()}
    reshaped = {**weights, "blocks.0.weight": weights["blocks.0.weight"].reshape(3, 4)}
    retyped = {**weights, "bn.mean": torch.ones(4, dtype=torch.float64)}
    for other in (renamed, reshaped, retyped):
        assert tensor_content_hash(other.items()) != reference
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).eval()
    named = list(module.named_parameters()) + list(module.named_buffers())
    assert tensor_content_hash(named) == tensor_content_hash(module.state_dict().items())
    assert tensor_content_hash([("w", torch.randn(4, 4).t()), ("b", torch.zeros((), dtype=torch.bfloat16))])
