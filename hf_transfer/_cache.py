"""Where hf_transfer keeps things it derives once per machine (converted checkpoints, materialised datasets)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .exceptions import ConfigError


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
