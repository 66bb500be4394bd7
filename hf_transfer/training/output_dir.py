"""The output directory is checked and owned before any heavy work: a writable directory, used by one run at a time.

Two runs writing into the same directory interleave their files (one run's "best model" read from a checkpoint the
other overwrote), and an unwritable directory otherwise shows up only when the first checkpoint is saved, after
training started. An advisory lock (``filelock``, a huggingface_hub dependency) held for the run's lifetime refuses a
second run with one line naming the first.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import CONFIG_FILENAME
from ..exceptions import ConfigError

LOCK_FILENAME = ".hf_transfer.lock"
OWNER_FILENAME = ".hf_transfer.owner.json"
# Files that mark a directory as holding a finished or interrupted run.
RUN_MARKERS = ("all_results.json", "trainer_state.json", "config.json", "model.safetensors", CONFIG_FILENAME)


def check_writable_directory(path: str | os.PathLike, flag: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there; one line naming ``flag`` otherwise."""
    folder = Path(path)
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return folder
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {str(path)!r}: {str(blocker)!r} is a file, not a directory.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise ConfigError(f"{flag} {str(path)!r} is not writable ({err.strerror or err}).") from None
    return folder


def check_previous_run(output_dir: str | os.PathLike, overwrite: bool, resume: object) -> None:
    """Refuse to write over a previous run (as the transformers example scripts do), before any heavy work."""
    path = Path(output_dir)
    if not path.is_dir() or overwrite or resume:
        return
    previous = [m for m in RUN_MARKERS if (path / m).exists()] + [p.name for p in path.glob("checkpoint-*")]
    if previous:
        raise ConfigError(
            f"--output_dir {str(output_dir)!r} already holds a run ({', '.join(sorted(previous)[:4])}). Pass "
            "--overwrite_output_dir to write over it, --resume_from_checkpoint to continue it, or choose another dir."
        )


class OutputDirLock:
    """Held for a run's lifetime by its main process; a second run on the same directory is refused at once.

    A directory the run created and left holding nothing but the lock (it failed before writing anything) is removed
    on release: a run that stops on bad input leaves no trace.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.folder = Path(output_dir)
        self._lock = FileLock(str(self.folder / LOCK_FILENAME), timeout=0)
        self._created = False

    def acquire(self) -> OutputDirLock:
        self._created = not self.folder.exists()
        check_writable_directory(self.folder, "--output_dir")
        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigError(
                f"--output_dir {str(self.folder)!r} is in use by another run ({self._owner()}); wait for it to end "
                "or choose another --output_dir."
            ) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        (self.folder / OWNER_FILENAME).write_text(json.dumps(owner))
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            (self.folder / OWNER_FILENAME).unlink(missing_ok=True)
            self._lock.release()
            if self._created and {p.name for p in self.folder.iterdir()} <= {LOCK_FILENAME}:
                (self.folder / LOCK_FILENAME).unlink(missing_ok=True)
                self.folder.rmdir()

    def __enter__(self) -> OutputDirLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _owner(self) -> str:
        try:
            owner = json.loads((self.folder / OWNER_FILENAME).read_text())
        except (OSError, ValueError):
            return "owner unknown"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
        command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(owner.get("argv") or []))[:120]
        return f"pid {owner.get('pid')} on {owner.get('host')}, started {started}: {command}"
