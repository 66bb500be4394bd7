"""The output directory is checked and owned before any heavy work: a writable directory, used by one run at a time.

Two runs writing into the same directory interleave their files (one run's "best model" read from a checkpoint the
other overwrote), and an unwritable directory otherwise shows up only when the first checkpoint is saved, after
training started. An advisory lock (``filelock``, a huggingface_hub dependency) held for the run's lifetime refuses a
second run with one line naming the first.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import CONFIG_FILENAME
from ..exceptions import ConfigError

logger = logging.getLogger(__name__)

LOCK_FILENAME = ".hf_transfer.lock"
OWNER_FILENAME = ".hf_transfer.owner.json"
# Files that mark a directory as holding a finished or interrupted run.
RUN_MARKERS = ("all_results.json", "trainer_state.json", "config.json", "model.safetensors", CONFIG_FILENAME)
WRITE_TEST_PREFIX = ".write-test-"  # the probe file of check_writable_directory, there for a moment
# Left by a run (or the system) without making a folder anyone's: an empty run's lock, a desktop's index file.
_IGNORED = frozenset({LOCK_FILENAME, OWNER_FILENAME, ".DS_Store"})


def _ignored(name: str) -> bool:
    """Not a file that makes the folder anyone's. The write probe counts as ignored because in a distributed run
    every rank checks the folder while the main process is probing it: a rank that listed the probe refused the run
    (exit 2) while the main process waited at its first barrier."""
    return name in _IGNORED or name.startswith(WRITE_TEST_PREFIX)


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
        with tempfile.NamedTemporaryFile(dir=folder, prefix=WRITE_TEST_PREFIX):
            pass
    except OSError as err:
        raise ConfigError(f"{flag} {str(path)!r} is not writable ({err.strerror or err}).") from None
    return folder


def check_previous_run(output_dir: str | os.PathLike, overwrite: bool, resume: object) -> None:
    """Refuse to write over a previous run (as the transformers example scripts do), or into a folder of other files
    (the user's own: a run would mix its files in, and replace those of the same name), before any heavy work.

    With ``overwrite``, a folder of other files is written into with one warning line naming them."""
    path = Path(output_dir)
    if not path.is_dir() or resume:
        return
    present = sorted(p.name for p in path.iterdir() if not _ignored(p.name))
    previous = [name for name in present if name in RUN_MARKERS or name.startswith("checkpoint-")]
    if previous and not overwrite:
        raise ConfigError(
            f"--output_dir {str(output_dir)!r} already holds a run ({', '.join(previous[:4])}). Pass "
            "--overwrite_output_dir to write over it, --resume_from_checkpoint to continue it, or choose another dir."
        )
    if present and not previous:
        shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
        if not overwrite:
            raise ConfigError(
                f"--output_dir {str(output_dir)!r} is not empty and holds no hf_transfer run ({shown}): choose a new "
                "or empty directory, or pass --overwrite_output_dir to write the run beside those files."
            )
        logger.warning(
            "--output_dir %r holds files hf_transfer did not write (%s): the run's files replace any of the same "
            "name, except a README.md, which is kept.",
            str(output_dir),
            shown,
        )


class OutputDirLock:
    """Held for a run's lifetime by its main process; a second run on the same directory is refused at once.

    A run that wrote nothing (it stopped on bad input) leaves no trace: the lock file it created is removed on release,
    and so is the directory if the run created it.
    """

    def __init__(self, output_dir: str | os.PathLike):
        self.folder = Path(output_dir)
        self._lock = FileLock(str(self.folder / LOCK_FILENAME), timeout=0)
        self._created = False
        self._before: set[str] = set()

    def acquire(self) -> OutputDirLock:
        self._created = not self.folder.exists()
        check_writable_directory(self.folder, "--output_dir")
        self._before = {p.name for p in self.folder.iterdir()}
        try:
            self._lock.acquire()
        except Timeout:
            raise ConfigError(
                f"--output_dir {str(self.folder)!r} is in use by another run ({self._owner()}); wait for it to end "
                "or choose another --output_dir."
            ) from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "argv": sys.argv}
        try:
            (self.folder / OWNER_FILENAME).write_text(json.dumps(owner))
        except BaseException:  # a full disk, a stop: the lock must not outlive the failed start
            self.release()
            raise
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            (self.folder / OWNER_FILENAME).unlink(missing_ok=True)
            self._lock.release()
            now = {p.name for p in self.folder.iterdir()}
            if LOCK_FILENAME not in self._before and now <= self._before | {LOCK_FILENAME}:
                (self.folder / LOCK_FILENAME).unlink(missing_ok=True)  # a refused start leaves the folder as it was
                if self._created and not now - {LOCK_FILENAME}:
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
