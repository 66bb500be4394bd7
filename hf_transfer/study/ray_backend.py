"""A study's cells on a Ray cluster: a fixed set of actors, each a warm worker that runs cell after cell.

Why actors and not tasks: Ray does reuse a task's worker process for CPU tasks, but it gives a GPU task a fresh
process by default (``max_calls=1``, so that the GPU's memory is released), and a reused task worker's device is
whatever CUDA saw first in that process while Ray assigns each task its GPU anew. An actor holds its CPUs and GPU for
its whole life, so its libraries, its CUDA context and its device stay valid from cell to cell; the worker frees
each cell's memory itself (:func:`~hf_transfer.study.worker.cell_environment`). A dead actor (out of memory, a lost
node) fails the cell it ran, in one line, with no retry (``max_task_retries=0``: a cell that kills its worker would
kill the next one too), and is replaced by a new actor for the cells still to run.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import deque
from collections.abc import Callable

from ..exceptions import ConfigError
from .worker import CellJob, CellOutcome

logger = logging.getLogger(__name__)


class CellActor:
    """One warm worker on the cluster (made remote by :func:`run_on_ray`): its first cell imports the libraries,
    the next ones find them loaded."""

    def run(self, work: Callable[[CellJob], CellOutcome], job: CellJob) -> CellOutcome:
        return work(job)


def run_on_ray(
    jobs: list[CellJob],
    max_parallel: int,
    address: str | None,
    on_done: Callable[[CellOutcome], None],
    work: Callable[[CellJob], CellOutcome],
) -> list[CellOutcome]:
    """Run every job on as many actors as the cluster holds at once, each asking for a cell's CPU threads (and a GPU
    when the cluster has them); ``max_parallel`` only sized those threads. Actors belong
    to this process: Ray ends them when it ends."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'hf-transfer-toolkit[ray]'.") from None
    if not jobs:
        return []
    if not ray.is_initialized():
        connect(ray, address)
    resources = ray.cluster_resources()
    threads = jobs[0].threads
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    fits = int(resources.get("CPU", 1) // threads)
    if gpus:
        fits = min(fits, int(resources["GPU"]))
    count = min(len(jobs), max(1, fits))
    actor_class = ray.remote(num_cpus=threads, num_gpus=gpus, max_restarts=0, max_task_retries=0)(CellActor)
    idle = deque(actor_class.remote() for _ in range(count))
    waiting, running, outcomes = deque(jobs), {}, []
    try:
        while waiting or running:
            while waiting and idle:
                actor, job = idle.popleft(), waiting.popleft()
                running[actor.run.remote(work, job)] = (actor, job)
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, job = running.pop(ref)
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayActorError as err:
                outcome = CellOutcome(job.cell, f"its Ray worker died: {_first_line(err)}", 0.0)
                ray.kill(actor)
                actor = actor_class.remote()
            except ray.exceptions.RayError as err:  # e.g. the task's arguments could not reach the worker
                outcome = CellOutcome(job.cell, f"Ray: {_first_line(err)}", 0.0)
            idle.append(actor)
            outcomes.append(outcome)
            on_done(outcome)
    finally:
        for actor in [*idle, *(actor for actor, _ in running.values())]:
            ray.kill(actor)
    return outcomes


def connect(ray, address: str | None) -> None:
    """``ray.init``, keeping this process's SIGTERM handler: Ray's own (set for the driver) exits with status 15
    and no word, where ``hf-transfer study`` says in one line where the study stopped and exits 143. Ray's shutdown
    still runs, from its ``atexit`` hook, as the process ends either way."""
    previous = signal.getsignal(signal.SIGTERM)
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
