"""A study's local workers stay warm from cell to cell, and a worker killed outright (out of memory, ``kill -9``)
fails only the cell it ran: the pool is re-created and the study goes on.

The jobs here sleep or kill their worker instead of training, and this module imports nothing of the library at its
top: each spawned worker imports only it, so the pool's recovery is tested in seconds. That a warm worker gives a
cell the metrics a fresh process gives is tested on real cells in ``test_study.py``.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Job:
    cell: str
    seconds: float = 0.0
    dies: bool = False  # SIGKILL its own worker after ``seconds``
    threads: int = 1


@dataclass(frozen=True)
class Outcome:
    cell: str
    error: str | None
    worker: int


def ready(parent: int) -> None:
    """The pool's initializer in these tests (the study's arms die_with_parent, tested in test_study.py)."""


def sleep_or_die(job: Job) -> Outcome:
    time.sleep(job.seconds)
    if job.dies:
        os.kill(os.getpid(), signal.SIGKILL)
    return Outcome(job.cell, None, os.getpid())


@pytest.mark.parametrize("max_parallel", [1, 2])
def test_a_killed_worker_fails_its_own_cell_and_the_study_goes_on(max_parallel):
    from hf_transfer.study.runner import WORKER_DIED, LocalWorkers

    # with two at a time, "a" is likely still running when "b" kills its worker: both are lost with the pool, then
    # each runs again alone, so only "b" is marked failed
    jobs = [Job("a", seconds=2.0), Job("b", seconds=0.2, dies=True), Job("c"), Job("d")]
    seen = []
    outcomes = LocalWorkers(max_parallel, seen.append, sleep_or_die, ready).run(jobs)
    assert outcomes == seen
    assert sorted((o.cell, o.error) for o in outcomes) == [("a", None), ("b", WORKER_DIED), ("c", None), ("d", None)]
    workers = {o.cell: o.worker for o in outcomes}
    assert workers["a"] not in (workers["c"], workers["d"])  # c and d ran in a new pool, after b's worker died
    if max_parallel == 1:
        assert workers["c"] == workers["d"]  # one warm worker, cell after cell
    assert os.getpid() not in workers.values()
