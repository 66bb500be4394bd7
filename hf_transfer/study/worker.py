"""One study cell inside a warm worker process: ``fine_tune`` with its output in the cell's ``cell.log``, and
everything the run may change in its process put back afterwards.

A worker (a ``concurrent.futures`` process or a Ray actor) runs many cells, so that a cell of a few seconds does not
pay the interpreter start and the imports of torch, transformers, timm and datasets (seconds each) every time. What
one cell leaves behind must not change the next one's result: each run seeds itself (``prepare`` calls ``set_seed``
before building the model), and :func:`cell_environment` restores the rest (working directory, environment
variables, logging handlers and levels, transformers' verbosity, warning filters, torch's global switches,
accelerate's process state), then frees the cell's memory.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..recipe import RecipeConfig
from .cells import Cell, mark_finished


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
    worker: int = 0  # the process that ran it (0: none did, e.g. its worker died)


def run_cell(job: CellJob) -> CellOutcome:
    """Run one cell in this worker: its threads, its log file, ``fine_tune``, then its finished mark. An exception is
    the cell's one-line error (its log has the traceback); the worker stays usable for the next cell."""
    import torch

    from ..exceptions import ConfigError, DataError, RunError
    from ..training import fine_tune

    folder = Path(job.study_dir) / job.cell.run_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with cell_environment(folder / "cell.log"):
        torch.set_num_threads(job.threads)
        started = time.perf_counter()
        try:
            fine_tune(job.config)
        except (ConfigError, DataError, RunError) as err:
            return CellOutcome(job.cell, str(err), time.perf_counter() - started, os.getpid())
        except Exception as err:  # a crash in one cell must not stop the study; its log has the traceback
            logging.getLogger(__name__).exception("cell failed")
            return CellOutcome(job.cell, f"{type(err).__name__}: {err} (see {folder / 'cell.log'})", 0.0, os.getpid())
        wall_time = time.perf_counter() - started
    mark_finished(Path(job.study_dir), job.cell, job.digest, wall_time)
    return CellOutcome(job.cell, None, wall_time, os.getpid())


@contextlib.contextmanager
def cell_environment(log_path: Path) -> Iterator[None]:
    """Run a cell with its output in ``log_path``, and put back afterwards what a run may change in its process."""
    import torch
    from transformers.utils import logging as hf_logging

    cwd, environ = os.getcwd(), dict(os.environ)
    root = logging.getLogger()
    root_state = root.level, list(root.handlers)
    verbosity = hf_logging.get_verbosity()
    torch_state = (
        torch.get_num_threads(),
        torch.get_default_dtype(),
        torch.is_grad_enabled(),
        torch.are_deterministic_algorithms_enabled(),
    )
    try:
        with warnings.catch_warnings(), _output_to(log_path):  # catch_warnings: each cell's log sees "once" warnings
            yield
    finally:
        os.chdir(cwd)
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        os.environ.update({name: value for name, value in environ.items() if os.environ.get(name) != value})
        root.setLevel(root_state[0])
        root.handlers[:] = root_state[1]
        hf_logging.set_verbosity(verbosity)
        torch.set_num_threads(torch_state[0])
        torch.set_default_dtype(torch_state[1])
        torch.set_grad_enabled(torch_state[2])
        torch.use_deterministic_algorithms(torch_state[3])
        _reset_accelerate_state()
        gc.collect()  # the cell's model, optimizer and data go now, not when the next cell allocates
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's output (prints, logging, progress bars) to the cell's log file."""
    from transformers.utils import logging as hf_logging

    with open(path, "a", buffering=1) as log:
        sys.stdout.flush()
        sys.stderr.flush()
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
            os.close(saved[0])
            os.close(saved[1])


def _reset_accelerate_state() -> None:
    """Forget accelerate's process-wide state (device, mixed precision) as a fresh process would, so the next cell's
    Trainer sets it up from its own arguments; what accelerate's own tests do between cases."""
    try:
        from accelerate.state import AcceleratorState
    except ImportError:
        return
    AcceleratorState._reset_state(reset_partial_state=True)


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
