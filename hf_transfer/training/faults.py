"""A run's faults as one line each: a stop (Ctrl-C, SIGTERM) or a full disk anywhere in it says what happened, where,
what was kept and the command that continues it. :func:`~hf_transfer.training.run.fine_tune` runs inside
:func:`faults_as_one_line` and keeps its :class:`RunProgress` up to date.

A full disk shows up as more than ``OSError(ENOSPC)``: torch.save's zip writer raises ``RuntimeError`` (``unexpected
pos``, ``file write failed``) and safetensors its own error (``StorageFull``), neither with an errno.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
from dataclasses import dataclass

from transformers import Trainer

from ..exceptions import Interrupted, RunError
from .interrupts import StopRequested
from .resume import last_valid_checkpoint, remove_incomplete_checkpoints

logger = logging.getLogger(__name__)


@dataclass
class RunProgress:
    """Where a run is, for the one line a stop or a full disk ends it with."""

    output_dir: str
    main_process: bool
    stage: str = "the run"
    start_step: int = 0  # the step resumed from: checkpoints above it were written by this run
    trainer: Trainer | None = None

    @property
    def self_training(self) -> bool:
        """In a self-training round through the Trainer: its steps write no checkpoint (the round is redone)."""
        return self.stage.startswith("self-training")

    def step(self) -> str:
        state = self.trainer.state if self.trainer is not None else None
        if self.self_training:  # a round's steps are not checkpointed: the round is what counts
            return f"in {self.stage}"
        if state is None or not state.max_steps:
            return "before training started"
        return f"at step {state.global_step} of {state.max_steps}"

    def close_progress_bars(self) -> None:
        """The Trainer closes its progress bars at the end of training; a stop must too, or they redraw after the
        one line."""
        for callback in self.trainer.callback_handler.callbacks if self.trainer is not None else []:
            for bar in (getattr(callback, "training_bar", None), getattr(callback, "prediction_bar", None)):
                if bar is not None:
                    bar.close()

    def last_checkpoint(self) -> str:
        """Tidy up (main process), then name the last complete checkpoint and the command that continues from it."""
        if self.main_process:
            removed = remove_incomplete_checkpoints(self.output_dir, self.start_step)
            if removed:
                logger.info("Removed the incomplete %s.", ", ".join(removed))
        last = last_valid_checkpoint(self.output_dir)
        if last is None:
            return "no checkpoint was kept; run the same command again to start over"
        rounds = " (the end of training on the labelled examples; the self-training rounds run again)"
        return (
            f"the last complete checkpoint is {last}{rounds if self.self_training else ''}; to "
            "continue from it, run the same command with --resume_from_checkpoint latest"
        )


@contextlib.contextmanager
def faults_as_one_line(progress: RunProgress):
    """A stop (Ctrl-C, SIGTERM) or a full disk anywhere in the run ends it with one line: what happened, where,
    what was kept and how to continue. Incomplete checkpoints of this run are removed first."""
    try:
        yield
    except StopRequested as stop:
        progress.close_progress_bars()
        name = signal.Signals(stop.signum).name
        where = stop.where or progress.step()
        raise Interrupted(
            f"Stopped by {name} {where}: {progress.last_checkpoint()}.", exit_status=128 + stop.signum
        ) from None
    except Exception as err:
        if not is_disk_full(err):
            raise
        progress.close_progress_bars()
        stage = progress.stage
        if stage == "a checkpoint" and progress.trainer is not None:
            stage = f"checkpoint-{progress.trainer.state.global_step}"
        raise RunError(
            f"No space left on the device for {stage} in {progress.output_dir} ({_what_failed(err)}): free some "
            f"space; {progress.last_checkpoint()}."
        ) from None


# What torch.save and safetensors say when a write fails for want of space (their errors carry no errno).
_WRITE_FAILED = ("No space left", "unexpected pos", "file write failed", "StorageFull", "Disk quota exceeded")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # EFBIG: a file-size limit (ulimit -f)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or an error it was raised from) is a write that did not fit on the disk."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _DISK_FULL_ERRNOS:
            return True
        if any(marker in str(current) for marker in _WRITE_FAILED):
            return True
        current = current.__cause__ or current.__context__
    return False


def _what_failed(err: BaseException) -> str:
    """The file that did not fit when the error names it, else the error's first line (shortened)."""
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or 'write failed'}: {err.filename}"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return first if len(first) <= 100 else first[:97] + "..."
