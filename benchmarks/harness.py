"""What every benchmark script here shares: a frozen copy of the library, a fresh feature cache, the commit."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Every measured process: offline, one thread unless a benchmark's --threads says otherwise, quiet progress.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "warning",
    "PYTHONUNBUFFERED": "1",
}


def snapshot_library(prefix: str) -> tuple[Path, str]:
    """Copy the working tree's ``hf_transfer/`` to a temporary folder that every subprocess imports first: the library
    may be edited while a benchmark runs, and one run must measure one version throughout (half the rows would
    otherwise time another library). Returns the folder and the sha256 of the copied files' paths and contents."""
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-lib-"))
    shutil.copytree(REPO / "hf_transfer", root / "hf_transfer", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for file in sorted(p for p in (root / "hf_transfer").rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return root, digest.hexdigest()


def temporary_cache(normal: Path, prefix: str) -> Path:
    """A fresh HF_TRANSFER_CACHE whose checkpoints and datasets are the normal cache's (symlinked): no run reuses
    another benchmark's frozen features, and nothing is downloaded or converted twice."""
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    for name in ("checkpoints", "datasets"):
        (normal / name).mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(normal / name, target_is_directory=True)
    return root


def remove_temporary_cache(root: Path) -> None:
    for name in ("checkpoints", "datasets"):  # the links only, never what they point to
        if (root / name).is_symlink():
            (root / name).unlink()
    shutil.rmtree(root, ignore_errors=True)


def git_commit() -> str:
    """The short commit, and whether the working tree differs from it."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        return out.stdout.strip() + (" (working tree has uncommitted changes)" if dirty.strip() else "")
    except OSError:
        return "unknown"


def run_worker(command: list[str], env: dict[str, str], log: Path, result: Path, timeout_s: int) -> float:
    """Run one measured process, keep its output in ``log`` and return its wall time; a failure (non-zero exit, time
    limit, no ``result`` file) raises with the log's tail, so a benchmark never tabulates a run that did not finish."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout_s)
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as err:
        output, returncode = f"{err.stdout or ''}{err.stderr or ''}\nTIMED OUT after {timeout_s} s", -1
    seconds = time.perf_counter() - started
    log.write_text(output if isinstance(output, str) else str(output))
    if returncode != 0 or not result.is_file():
        raise RuntimeError(f"{log.stem} failed; see {log}:\n{str(output)[-3000:]}")
    return seconds
