"""Ctrl-C and SIGTERM during a run: stop at the next step with a checkpoint where that is quick, else at once.

Python's default turns Ctrl-C into a ``KeyboardInterrupt`` traceback and SIGTERM into a silent exit that skips every
``finally`` (the output directory's owner file stays behind). Here both signals raise :class:`StopRequested` instead,
which unwinds the run like any exception (locks released) and which ``fine_tune`` turns into one line.

The first signal during training asks the Trainer to save a checkpoint after the current step and stop there
(:class:`StopAtNextStep`); an alarm bounds that to :data:`GRACE_SECONDS` (3 s), so a scheduler's grace period (and
``accelerate launch``, which kills its child 5 s after passing SIGTERM on) is respected. A second signal, the alarm,
or a signal outside the training loop (loading data, evaluating at the end, saving the final model) stops at once.
With several processes every one must stop at the same step, which no signal guarantees: they stop at once.

A request is kept, not only raised: library code that catches everything can swallow the exception (``datasets``
hashes a transform for its fingerprint under a bare ``except:``, and a Ctrl-C that lands there was lost: the
self-training round ran to its end, exit 0). The Trainer's next ``on_train_begin`` or ``on_train_end`` raises it
again, and so does ``fine_tune`` after preparing and before saving (a closed-form head trains without the Trainer),
so a run asked to stop never finishes as if it had not been.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

# How long the first signal waits for the checkpoint: within accelerate's 5 s; more for big models and a scheduler's
# longer grace period (SLURM's KillWait, `docker stop -t`) with HF_TRANSFER_STOP_GRACE_S.
GRACE_SECONDS = 3.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(BaseException):
    """Raised from a signal handler. A ``BaseException``, as ``KeyboardInterrupt`` is: library code that catches
    ``Exception`` (a data loader's retry, a metric's fallback) lets it through."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.where: str | None = None  # a phase outside the Trainer, said by :func:`stopping_in`


@contextlib.contextmanager
def stopping_in(where: Callable[[], str]) -> Iterator[None]:
    """A stop raised inside says ``where()`` it came (e.g. "in the contrastive phase, step 9 of 15"): before the
    Trainer exists the run's progress knows only that training has not started, which is not what the user saw."""
    try:
        yield
    except StopRequested as stop:
        stop.where = stop.where or where()
        raise


class StopAtNextStep(TrainerCallback):
    """After a first signal: save a checkpoint at the end of the current step (or evaluation), then stop.

    Stopping is raising :class:`StopRequested` from ``on_save`` rather than setting ``should_training_stop``: the
    Trainer's normal end of training would delete every checkpoint but the best one (``save_total_limit=1``),
    the one just saved included. Put it after the callbacks that write into a checkpoint on save."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self.training = False
        self.checkpoint = True  # False: stop at the end of the step without one (self-training rounds write none)

    def on_train_begin(self, args, state, control, **kwargs):
        self.raise_if_requested()  # a stop raised before training and swallowed on its way up
        self.training = True

    def on_train_end(self, args, state, control, **kwargs):
        self.raise_if_requested()  # a signal after the last step's end: the run was asked to stop, so it stops
        self.training = False

    def raise_if_requested(self) -> None:
        if self.requested is not None:
            self.training = False
            raise StopRequested(self.requested)

    def on_step_end(self, args, state, control, **kwargs):
        self._stop_or_save(control)

    def on_evaluate(self, args, state, control, **kwargs):
        self._stop_or_save(control)

    def _stop_or_save(self, control) -> None:
        if self.requested is None:
            return
        if not self.checkpoint:
            self.raise_if_requested()
        control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.raise_if_requested()


def grace_seconds() -> float:
    """:data:`GRACE_SECONDS`, or ``HF_TRANSFER_STOP_GRACE_S`` when set to a positive number."""
    try:
        value = float(os.environ.get("HF_TRANSFER_STOP_GRACE_S", GRACE_SECONDS))
    except ValueError:
        return GRACE_SECONDS
    return value if value > 0 else GRACE_SECONDS


@contextlib.contextmanager
def stop_on_signals(stopper: StopAtNextStep, graceful: bool) -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`StopRequested` while this is open (main thread only: elsewhere Python cannot
    install handlers); ``graceful``: the first one during training waits for the next checkpoint, at most
    :data:`GRACE_SECONDS`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop_now(signum: int, frame) -> None:
        stopper.requested = stopper.requested or signum  # kept: raised again if this one is swallowed
        raise StopRequested(stopper.requested)

    def handle(signum: int, frame) -> None:
        if graceful and stopper.training and stopper.requested is None:
            stopper.requested = signum
            logger.warning(
                "%s: saving a checkpoint after this step, then stopping (a second signal stops at once).",
                signal.Signals(signum).name,
            )
            signal.signal(signal.SIGALRM, stop_now)
            signal.setitimer(signal.ITIMER_REAL, grace_seconds())
            return
        stop_now(signum, frame)

    previous = {signum: signal.signal(signum, handle) for signum in _SIGNALS}
    previous_alarm = signal.getsignal(signal.SIGALRM)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
