"""A persistent, content-keyed store of frozen-prefix features, so that each example is encoded once *ever*.

What is cached: the outputs of a frozen prefix of a network (pretrained weights, frozen, eval mode, no augmentation).
Such a prefix is a fixed function of its input, so its features can be reused by every later run on the same data:
other learning rates, seeds, heads or data sizes. One entry holds the feature tensors of one split.

The key: a :class:`FeatureKey` holds everything the features depend on and nothing else: the checkpoint's *content*
hash (:func:`tensor_content_hash`, so a renamed or re-downloaded checkpoint still hits and an edited one misses), which
blocks are frozen, the preprocessing (transform config, tokenizer, max_seq_length, pooling), the split's ``datasets``
fingerprint and the storage dtype. Its digest, the sha256 of the canonical JSON, names the entry's folder.

Atomicity: an entry is written to a temporary folder next to its final place and renamed into place
(:func:`~hf_transfer._cache.write_dir_atomically`), so a reader (another process sharing the cache) sees a whole entry
or none; when two writers race, the first rename wins and the other keeps it. Concurrent writers are real: a study runs
its cells in parallel processes, and cells of one checkpoint share its validation rows and nested training subsets.
So the caller encodes under :meth:`FeatureStore.exclusive`, a per-key file lock: exactly one process encodes what is
missing while the others wait, then load its entry instead of encoding the same rows again.

Corruption: an entry is verified on every load (its ``meta.json`` parses and names the requested key, the file's size
matches its header and its sha256 the recorded one), so a torn write, a truncated copy or a flipped byte is never used:
it is logged in one warning line, deleted, and reported as a miss, and the caller re-encodes. (Hence no fsync: an entry
torn by a power cut only costs a re-encoding.)

Unwritable cache: when the cache folder cannot be created or written (read-only, a file in the way, disk full), the
features are kept in memory for the rest of the run, after one warning line: a cache must never crash a training run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout
from safetensors import SafetensorError

from .._cache import TMP_PREFIX, TRASH_PREFIX, cache_root, remove_dir, sha256_file, write_dir_atomically

if TYPE_CHECKING:  # torch is imported where tensors are handled: `hf-transfer cache list` reads only meta.json files
    import torch

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout of an entry changes: older entries then read as corrupt and are re-encoded
FEATURES_DIR = "features"
TENSORS_FILE = "features.safetensors"
META_FILE = "meta.json"
STALE_TMP_SECONDS = 3600  # clear() removes temporary folders untouched for this long
_DIGEST = re.compile(r"[0-9a-f]{64}")


def _json_default(value: Any) -> Any:
    import torch

    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    raise TypeError(f"feature key parts must be JSON-serialisable, got {type(value).__name__}: {value!r}")


def _canonical(parts: Any) -> str:
    return json.dumps(
        parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    )


@dataclass(frozen=True)
class FeatureKey:
    """What a set of features depends on, as canonical JSON (sorted keys): immutable, hashable, and stable across
    processes and Python versions. Build one with :func:`feature_key`."""

    canonical: str

    @property
    def parts(self) -> dict[str, Any]:
        return json.loads(self.canonical)

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: the entry's folder name (and its lock's)."""
        return hashlib.sha256(self.canonical.encode("utf-8")).hexdigest()


def feature_key(**parts: Any) -> FeatureKey:
    """A key from named JSON-serialisable parts (``torch.dtype`` values are written as their name), e.g.
    ``feature_key(model=tensor_content_hash(...), prefix="blocks.0-8", preprocessing={...}, data=split._fingerprint,
    dtype="float16")``. Tuples and lists are the same part."""
    if not parts:
        raise ValueError("a feature key needs at least one part")
    return FeatureKey(_canonical(parts))


def tensor_content_hash(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of named tensors, sorted by name (so the order of iteration,
    e.g. parameters then buffers, does not matter). Key a checkpoint by its content, not by its path, with e.g.
    ``tensor_content_hash(itertools.chain(prefix.named_parameters(), prefix.named_buffers()))``."""
    import torch

    named = sorted(tensors, key=lambda item: item[0])
    digest = hashlib.sha256()
    for i, (name, tensor) in enumerate(named):
        if i and named[i - 1][0] == name:
            raise ValueError(f"tensor name {name!r} appears twice")
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        header = {"name": name, "dtype": str(tensor.dtype), "shape": list(tensor.shape), "nbytes": data.nbytes}
        digest.update(_canonical(header).encode("utf-8") + b"\n")
        digest.update(memoryview(data))
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureEntry:
    """One entry on disk, as ``hf-transfer cache list`` shows it."""

    digest: str
    path: Path
    size_bytes: int  # all its files
    description: str
    created: datetime  # UTC
    key: dict[str, Any]


class _Corrupt(Exception):
    """An entry that failed verification; the message says why."""


def _one_line(error: BaseException | str) -> str:
    if isinstance(error, OSError) and error.strerror:
        error = error.strerror
    return " ".join(str(error).split())


def _dir_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for child in path.iterdir():
        newest = max(newest, child.stat().st_mtime)
    return newest


def _check_file(file: Path, meta: dict[str, Any]) -> None:
    """Raise :class:`_Corrupt` unless ``file`` has the recorded size, a whole header describing the recorded tensors,
    and the recorded sha256 (checked last: it reads the whole file)."""
    size = file.stat().st_size
    if size != meta["size_bytes"]:
        raise _Corrupt(f"its file has {size} bytes, {meta['size_bytes']} were written")
    with open(file, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length < 0 or length > size - 8:
            raise _Corrupt("its safetensors header is truncated")
        header = json.loads(handle.read(length))
    described = {name: info for name, info in header.items() if name != "__metadata__"}
    end = 8 + length + max((info["data_offsets"][1] for info in described.values()), default=0)
    if end != size:
        raise _Corrupt(f"its file has {size} bytes, its header describes {end}")
    shapes = {name: info["shape"] for name, info in described.items()}
    if shapes != {name: info["shape"] for name, info in meta["tensors"].items()}:
        raise _Corrupt("its tensors differ from those recorded in meta.json")
    if sha256_file(file) != meta["sha256"]:
        raise _Corrupt("its sha256 differs from the recorded one")


def _cast(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    import torch

    cast = tensor.to(dtype)
    if bool((torch.isinf(cast) & ~torch.isinf(tensor)).any()):
        logger.warning("Feature tensor %r has values beyond the range of %s; stored as %s.", name, dtype, tensor.dtype)
        return tensor
    return cast


def _prepare(tensors: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors (floating ones cast to ``dtype``), none sharing memory with another."""
    import torch

    if not isinstance(tensors, Mapping):
        raise TypeError(f"features must be a dict of name -> tensor, got {type(tensors).__name__}")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"the storage dtype must be a floating dtype, got {dtype}")
    out: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
            raise TypeError(f"features must map names (str) to tensors, got {name!r}: {type(tensor).__name__}")
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point() and tensor.dtype != dtype:
            tensor = _cast(name, tensor, dtype)
        tensor = tensor.contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in storages:
            tensor = tensor.clone()  # safetensors refuses tensors that share memory
        storages.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


class FeatureStore:
    """Frozen-prefix features on disk under ``root`` (default ``<cache_root()>/features``, resolved on first use, so
    ``HF_TRANSFER_CACHE`` moves it), one folder per key: ``<digest>/features.safetensors`` + ``<digest>/meta.json``,
    with ``<digest>.lock`` beside it. Thread-safe; processes may share a root."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = Path(root).expanduser() if root is not None else None
        self._memory: dict[str, dict[str, torch.Tensor]] = {}  # digest -> features, when the disk is unwritable
        self._disk_writable = True
        self._mutex = threading.Lock()

    @property
    def root(self) -> Path:
        """The store's folder. Resolving the default creates it, and raises OSError when that fails."""
        if self._root is None:
            root = cache_root() / FEATURES_DIR
            root.mkdir(parents=True, exist_ok=True)
            self._root = root
        return self._root

    # -- reading --------------------------------------------------------------------------------------------------

    def load(self, key: FeatureKey) -> dict[str, torch.Tensor] | None:
        """The features stored under ``key`` (CPU tensors, in their stored dtype), or None when absent. A corrupt
        entry is logged in one warning line, deleted, and reported as absent."""
        with self._mutex:
            kept = self._memory.get(key.digest)
        if kept is not None:
            return dict(kept)
        path = self._entry_path(key.digest)
        try:
            if path is None or not path.is_dir():
                return None
            meta = json.loads((path / META_FILE).read_text("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise _Corrupt("its meta.json has an unknown format")
            if _canonical(meta.get("key")) != key.canonical:
                raise _Corrupt("the key parts in its meta.json differ from the requested key")
            _check_file(path / TENSORS_FILE, meta)
            from safetensors.torch import load_file

            return load_file(path / TENSORS_FILE)
        except FileNotFoundError:
            if path is not None and not path.exists():  # deleted meanwhile (clear() in another process): a miss
                return None
            reason = "a file is missing"
        except PermissionError as error:
            logger.warning(
                "Cannot read feature cache entry %s (%s); the features will be re-encoded.", path, _one_line(error)
            )
            return None
        except _Corrupt as error:
            reason = str(error)
        except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, SafetensorError) as error:
            reason = _one_line(f"{type(error).__name__}: {error}")
        deleted = "deleted it" if self._remove(path) is not None else "could not delete it"
        logger.warning(
            "Feature cache entry %s is corrupt (%s); %s, the features will be re-encoded.", path, reason, deleted
        )
        return None

    def entries(self, unreadable: bool = False) -> list[FeatureEntry]:
        """The entries on disk, newest first, read from their ``meta.json`` (not verified: that reads every file).
        Temporary folders are left out, and so are unreadable entries unless ``unreadable`` (``hf-transfer cache
        list`` shows them, so that what it counts is what is on disk and ``cache clear`` can free them)."""
        found: list[FeatureEntry] = []
        for child in self._children():
            if not (_DIGEST.fullmatch(child.name) and child.is_dir()):
                continue
            try:
                meta = json.loads((child / META_FILE).read_text("utf-8"))
                created = datetime.fromisoformat(meta["created"])
                entry = FeatureEntry(
                    child.name, child, _dir_size(child), str(meta.get("description", "")), created, dict(meta["key"])
                )
            except (OSError, ValueError, KeyError, TypeError) as err:
                if not unreadable:
                    continue
                modified = datetime.fromtimestamp(_newest_mtime(child), timezone.utc)
                why = f"unreadable ({type(err).__name__}: {err}); rebuilt when a run needs it, or cleared by digest"
                entry = FeatureEntry(child.name, child, _dir_size(child), why, modified, {})
            found.append(entry)
        return sorted(found, key=lambda entry: entry.created, reverse=True)

    # -- writing --------------------------------------------------------------------------------------------------

    def save(
        self,
        key: FeatureKey,
        tensors: Mapping[str, torch.Tensor],
        description: str = "",
        dtype: torch.dtype | None = None,
    ) -> dict[str, torch.Tensor]:
        """Store ``tensors`` under ``key`` and return them as stored (what a later :meth:`load` returns).

        ``dtype`` casts the floating tensors first: ``torch.float16`` halves the disk size and the load time, at
        ~3 significant digits (plenty for features fed to a trained head); a tensor whose values exceed float16's
        range (65504) keeps its dtype. Put the storage dtype in the key. Never raises for an unwritable cache: the
        features are then kept in memory for this run (one warning per store)."""
        prepared = _prepare(tensors, dtype)
        if self._disk_writable:
            try:
                self._write(key, prepared, description)
                return prepared
            except (OSError, SafetensorError) as error:
                self._fall_back(error)
        with self._mutex:
            self._memory[key.digest] = prepared
        return dict(prepared)

    @contextlib.contextmanager
    def exclusive(self, key: FeatureKey, description: str = "") -> Iterator[None]:
        """Hold ``key``'s file lock (``<digest>.lock``), waiting for a process that holds it: look up, encode and save
        inside, and a concurrent process missing the same features waits, then loads them. Without a writable cache
        there is nothing to share, and no lock."""
        lock = self._lock(key, description)
        try:
            yield
        finally:
            if lock is not None:
                lock.release()

    def clear(self, digests: Iterable[str] | None = None) -> int:
        """Delete the entries ``digests`` (all when None) and stale temporary folders; return the bytes freed."""
        wanted = None if digests is None else set(digests)
        for digest in wanted or ():
            if not _DIGEST.fullmatch(digest):
                raise ValueError(f"not a feature cache digest: {digest!r}")
        with self._mutex:
            for digest in list(self._memory):
                if wanted is None or digest in wanted:
                    del self._memory[digest]
        freed = 0
        for child in self._children():
            name = child.name
            try:
                if _DIGEST.fullmatch(name):
                    doomed = wanted is None or name in wanted
                elif name.startswith(TRASH_PREFIX):
                    doomed = True
                elif name.startswith(TMP_PREFIX):
                    doomed = time.time() - _newest_mtime(child) > STALE_TMP_SECONDS
                else:
                    doomed = False
                if doomed and child.is_dir():
                    freed += self._remove(child) or 0
            except OSError:
                continue
        return freed

    # -- internals ------------------------------------------------------------------------------------------------

    def _entry_path(self, digest: str) -> Path | None:
        try:
            return self.root / digest
        except OSError:
            return None

    def _children(self) -> list[Path]:
        try:
            return list(self.root.iterdir())
        except OSError:
            return []

    def _write(self, key: FeatureKey, tensors: dict[str, torch.Tensor], description: str) -> None:
        from safetensors.torch import save_file

        def write(tmp: Path) -> None:
            file = tmp / TENSORS_FILE
            save_file(tensors, str(file), metadata={"feature_key": key.digest})
            meta = {
                "format": FORMAT,
                "key": key.parts,
                "description": description,
                "tensors": {
                    n: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
                    for n, t in tensors.items()
                },
                "sha256": sha256_file(file),
                "size_bytes": file.stat().st_size,
                "created": datetime.now(timezone.utc).isoformat(),
                "hf_transfer_version": getattr(sys.modules.get("hf_transfer"), "__version__", None),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", "utf-8")

        # Another writer's entry in the way is kept unless it is stale or damaged (then replaced).
        write_dir_atomically(self.root / key.digest, write, lambda final: self._matches(final, key))

    @staticmethod
    def _matches(path: Path, key: FeatureKey) -> bool:
        try:
            meta = json.loads((path / META_FILE).read_text("utf-8"))
            return meta.get("format") == FORMAT and _canonical(meta.get("key")) == key.canonical
        except (OSError, ValueError, TypeError, AttributeError):
            return False

    def _remove(self, path: Path | None) -> int | None:
        """Delete a folder, renaming it aside first so that readers see all of it or nothing; return its size in
        bytes, or None when it could not be removed."""
        if path is None:
            return None
        size = _dir_size(path)
        return size if remove_dir(path) else None

    def _lock(self, key: FeatureKey, description: str) -> FileLock | None:
        """The key's file lock, acquired (waiting for another process encoding it); None when it cannot be created."""
        if not self._disk_writable:
            return None
        try:
            lock = FileLock(str(self.root / f"{key.digest}.lock"))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                logger.info(
                    "Waiting for another process to encode %s (%s).", description or key.digest, lock.lock_file
                )
                lock.acquire()
            return lock
        except Timeout:  # only with a finite timeout; never here
            return None
        except OSError as error:
            self._fall_back(error)
            return None

    def _fall_back(self, error: BaseException) -> None:
        with self._mutex:
            if not self._disk_writable:
                return
            self._disk_writable = False
        where = self._root or getattr(error, "filename", None) or "(unknown)"
        logger.warning(
            "Feature cache %s is not writable (%s); features are kept in memory for this run only.",
            where,
            _one_line(error),
        )
