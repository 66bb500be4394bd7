"""Where hf_transfer keeps things it derives once per machine (converted checkpoints, materialised datasets, frozen
features), and the one way such a folder is written: atomically, so processes sharing the cache never see half of one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from .exceptions import ConfigError

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"  # a folder being written (or abandoned by a killed process)
TRASH_PREFIX = ".del-"  # a folder being deleted: renamed out of the way first, so readers never see half of it


def cache_root() -> Path:
    """``$HF_TRANSFER_CACHE``, else ``hf_transfer`` in the user's cache dir (not created here)."""
    root = os.environ.get("HF_TRANSFER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hf_transfer"
    )
    return Path(root)


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under :func:`cache_root`; one line (``ConfigError``) when it cannot be created.

    Derived artefacts live outside the repository so that nothing generated is ever committed.
    """
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only, a file in the way, a full disk: one line, not a traceback
        raise ConfigError(
            f"HF_TRANSFER_CACHE: cannot create {str(path)!r} ({err.strerror or err}); point HF_TRANSFER_CACHE at a "
            "writable directory."
        ) from None
    return path


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_dir_atomically(final: Path, write: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> bool:
    """Write the folder ``final`` so that readers (other processes, DDP ranks) see all of it or nothing.

    ``write(tmp)`` fills a temporary sibling (``.tmp-…``), which is then renamed to ``final``. When writers race, the
    first rename wins and the others keep its copy; a ``final`` in the way that ``is_complete`` rejects (stale,
    damaged, half-written by an older version) is replaced. The temporary folder is gone afterwards whatever happens.
    Returns whether this call's copy is the one published."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{final.name[:16]}-", dir=final.parent))
    try:
        write(tmp)
        for attempt in range(2):
            try:
                os.rename(tmp, final)  # atomic; on POSIX it also replaces an empty folder
                return True
            except OSError:
                if not final.exists():
                    raise
            if attempt or is_complete(final):
                logger.debug("%s was written by another process meanwhile; kept its copy.", final)
                return False
            remove_dir(final)
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_dir(path: Path) -> bool:
    """Delete a folder, renaming it aside (``.del-…``) first so that readers see all of it or nothing; return whether
    it could be moved out of the way (what is left of it then is removed as far as possible)."""
    doomed = path
    if not path.name.startswith(TRASH_PREFIX):
        doomed = path.with_name(f"{TRASH_PREFIX}{uuid.uuid4().hex}")
        try:
            os.rename(path, doomed)
        except OSError:
            return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True
