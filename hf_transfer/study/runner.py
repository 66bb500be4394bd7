"""Running a study's cells: one process per cell, N at a time, on this machine (``concurrent.futures``) or as Ray
tasks on a cluster — never a scheduler of our own.

Each cell runs ``fine_tune`` in a fresh process (a killed or failing cell cannot take the study down, and no state
leaks between cells), with the machine's cores split between the cells running at once. Its output goes to
``cell.log`` in the cell's directory; the study prints one line per finished cell.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..recipe import RecipeConfig
from .cells import Cell, mark_finished

logger = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class CellJob:
    """Everything a worker needs (picklable): the cell, its resolved config, where the study lives."""

    cell: Cell
    config: RecipeConfig
    study_dir: str
    digest: str
    threads: int


@dataclass(frozen=True)
class CellOutcome:
    cell: Cell
    error: str | None  # one line; None when the cell finished
    wall_time: float


def run_cell(job: CellJob) -> CellOutcome:
    """Run one cell in this (fresh) process: its threads, its log file, ``fine_tune``, then its finished mark."""
    import torch

    from ..exceptions import ConfigError, DataError, RunError
    from ..training import fine_tune

    torch.set_num_threads(job.threads)
    folder = Path(job.study_dir) / job.cell.run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with _logging_to(folder / "cell.log"):
        try:
            fine_tune(job.config)
        except (ConfigError, DataError, RunError) as err:
            return CellOutcome(job.cell, str(err), time.perf_counter() - started)
        except Exception as err:  # a crash in one cell must not stop the study; its log has the traceback
            logging.getLogger(__name__).exception("cell failed")
            return CellOutcome(job.cell, f"{type(err).__name__}: {err} (see {folder / 'cell.log'})", 0.0)
    wall_time = time.perf_counter() - started
    mark_finished(Path(job.study_dir), job.cell, job.digest, wall_time)
    return CellOutcome(job.cell, None, wall_time)


@contextlib.contextmanager
def _logging_to(path: Path) -> Iterator[None]:
    """Send this process's output (prints, logging, progress bars) to the cell's log file."""
    from transformers.utils import logging as hf_logging

    with open(path, "a", buffering=1) as log:
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        hf_logging.set_verbosity_warning()
        try:
            yield
        finally:
            root.removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)


def run_cells(
    jobs: list[CellJob],
    max_parallel: int,
    backend: str = "local",
    ray_address: str | None = None,
    on_done: Callable[[CellOutcome], None] = lambda outcome: None,
) -> list[CellOutcome]:
    """Run every job, ``max_parallel`` at a time (local) or as the Ray cluster schedules them; ``on_done`` sees each
    outcome as it arrives."""
    if backend == "ray":
        return _run_on_ray(jobs, ray_address, on_done)
    outcomes = []
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch/thread state inherited
    with ProcessPoolExecutor(
        max_workers=max_parallel,
        mp_context=context,
        max_tasks_per_child=1,
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        pending = {pool.submit(run_cell, job) for job in jobs}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes.append(outcome)
                on_done(outcome)
    return outcomes


def die_with_parent(parent: int) -> None:
    """A cell worker ends when the study's process does, however it ends (``kill -9`` included): without this an
    orphaned cell runs on and collides with the next run of the study. Linux's ``PR_SET_PDEATHSIG``; elsewhere
    nothing."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the study died before the signal was armed
        os._exit(1)


def _run_on_ray(jobs: list[CellJob], address: str | None, on_done: Callable[[CellOutcome], None]) -> list[CellOutcome]:
    """Each cell a Ray task asking for its CPU threads (and a GPU when the cluster has them)."""
    try:
        import ray
    except ImportError:
        from ..exceptions import ConfigError

        raise ConfigError("--backend ray needs Ray: pip install 'hf-transfer-toolkit[ray]'.") from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    remote = ray.remote(run_cell)
    pending = [remote.options(num_cpus=job.threads, num_gpus=gpus).remote(job) for job in jobs]
    outcomes = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        outcome = ray.get(done[0])
        outcomes.append(outcome)
        on_done(outcome)
    return outcomes


def threads_per_cell(max_parallel: int) -> int:
    return max(1, (os.cpu_count() or 1) // max_parallel)
