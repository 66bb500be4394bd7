"""Running a study's cells in warm workers, N at a time, on this machine (``concurrent.futures``) or as Ray actors on
a cluster — never a scheduler of our own.

A worker process runs cell after cell (:mod:`hf_transfer.study.worker`: libraries imported once, the process state a
run may change put back after each cell), with the machine's cores split between the cells running at once. A cell
that fails is its one-line error; a worker killed outright (out of memory, ``kill -9``) breaks the local pool, which
is re-created: the cell it ran is marked failed and the study goes on. Each cell's output goes to ``cell.log`` in
its directory; the study prints one line per finished cell.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from .worker import CellJob, CellOutcome, die_with_parent, run_cell

__all__ = ["BACKENDS", "CellJob", "CellOutcome", "die_with_parent", "run_cell", "run_cells", "threads_per_cell"]

logger = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
WORKER_DIED = "its worker process died (killed from outside, e.g. out of memory or kill -9)"


def run_cells(
    jobs: list[CellJob],
    max_parallel: int,
    backend: str = "local",
    ray_address: str | None = None,
    on_done: Callable[[CellOutcome], None] = lambda outcome: None,
    work: Callable[[CellJob], CellOutcome] = run_cell,
) -> list[CellOutcome]:
    """Run every job, ``max_parallel`` at a time, in warm workers (local processes or Ray actors); ``on_done`` sees
    each outcome as it arrives. ``work`` is what a worker does with a job (a module-level function: it is pickled)."""
    if backend == "ray":
        from .ray_backend import run_on_ray

        return run_on_ray(jobs, max_parallel, ray_address, on_done, work)
    return LocalWorkers(max_parallel, on_done, work).run(jobs)


class LocalWorkers:
    """A ``ProcessPoolExecutor`` of warm, spawned workers that outlives any one of them: when a worker dies the pool
    is broken, so it is replaced. The cell that was running alone when that happened failed; cells that were running
    beside others are suspects, each run again alone, so that only the one that kills its worker is marked failed."""

    def __init__(
        self,
        max_parallel: int,
        on_done: Callable[[CellOutcome], None],
        work: Callable[[CellJob], CellOutcome] = run_cell,
        initializer: Callable[[int], None] = die_with_parent,
    ) -> None:
        self.max_parallel = max_parallel
        self.on_done = on_done
        self.work = work
        self.initializer = initializer  # called in each new worker with the study's process id
        self.outcomes: list[CellOutcome] = []

    def run(self, jobs: list[CellJob]) -> list[CellOutcome]:
        waiting, suspects = deque(jobs), deque()
        while waiting or suspects:
            lost = self._run_pool(waiting, suspects)
            if len(lost) == 1:
                self._finish(CellOutcome(lost[0].cell, WORKER_DIED, 0.0))
            else:
                suspects.extend(lost)
        return self.outcomes

    def _run_pool(self, waiting: deque[CellJob], suspects: deque[CellJob]) -> list[CellJob]:
        """Run jobs in one pool until all are done or a worker dies; returns the jobs lost with it."""
        context = multiprocessing.get_context("spawn")  # fresh interpreters: no torch/thread state inherited
        pool = ProcessPoolExecutor(
            max_workers=self.max_parallel,
            mp_context=context,
            initializer=self.initializer,
            initargs=(os.getpid(),),
        )
        running: dict[Future, CellJob] = {}
        lost: list[CellJob] = []
        try:
            while (waiting or suspects or running) and not lost:
                if suspects and not running:
                    job = suspects.popleft()  # alone: if its worker dies, it was this cell
                    running[pool.submit(self.work, job)] = job
                while not suspects and waiting and len(running) < self.max_parallel:
                    job = waiting.popleft()
                    running[pool.submit(self.work, job)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(isinstance(future.exception(), BrokenProcessPool) for future in done):
                    done, _ = wait(running, return_when=ALL_COMPLETED)  # a broken pool fails all its futures
                for future in done:
                    job = running.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        lost.append(job)
                    else:
                        self._finish(future.result())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if lost:
            logger.warning("A cell worker died; starting new ones (%d cell(s) were running).", len(lost))
        return lost

    def _finish(self, outcome: CellOutcome) -> None:
        self.outcomes.append(outcome)
        self.on_done(outcome)


def threads_per_cell(max_parallel: int) -> int:
    return max(1, (os.cpu_count() or 1) // max_parallel)
