"""Resuming a run: find the last *complete* checkpoint, and refuse one that belongs to a different run.

The Trainer's own "latest" is the highest-numbered ``checkpoint-N`` directory, even when a kill left it half-written
(a traceback on load). Here a checkpoint counts only when every file the Trainer needs is there and whole; an
incomplete one is skipped with a warning. Each checkpoint also records what run it belongs to (task, base model,
labels, strategy), so resuming with other labels or another model stops with one line instead of continuing silently.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..exceptions import ConfigError
from ..hub.artifacts import IncompleteRunError, check_safetensors

logger = logging.getLogger(__name__)

RUN_IDENTITY_FILENAME = "hf_transfer_run.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
_PICKLED_STATE = ("optimizer.pt", "scheduler.pt")  # torch.save's zip format: a cut-short file has no central directory
_LATEST = {"true", "latest", "last"}


def checkpoint_problem(path: Path) -> str | None:
    """What makes a checkpoint directory unusable, or None when it is complete."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return "no readable trainer_state.json"
    weights = [path / name for name in _WEIGHTS if (path / name).exists()]
    if not weights and not (path / "model.safetensors.index.json").exists():
        return "no model weights"
    for file in weights:
        try:
            check_safetensors(file)
        except IncompleteRunError as err:
            return str(err)
    for name in _PICKLED_STATE:
        if (path / name).exists() and not zipfile.is_zipfile(path / name):
            return f"{name} is truncated"
    return None


def last_valid_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` in ``output_dir``; incomplete ones are skipped with a warning."""
    folder = Path(output_dir)
    numbered = [(int(m.group(1)), p) for p in folder.glob("checkpoint-*") if (m := _CHECKPOINT.match(p.name))]
    for _, path in sorted(numbered, reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("Skipping incomplete %s (%s): it was probably cut short by a kill.", path.name, problem)
    return None


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str | Path) -> str | None:
    """``--resume_from_checkpoint``: nothing, ``True``/``latest`` (the last complete checkpoint), or a path."""
    if value is None or value is False or str(value).strip().lower() in ("", "false", "none", "no"):
        return None
    if value is True or str(value).strip().lower() in _LATEST:
        found = last_valid_checkpoint(output_dir)
        if found is None:
            raise ConfigError(
                f"--resume_from_checkpoint {value}: no complete checkpoint in --output_dir {str(output_dir)!r}; "
                "start without --resume_from_checkpoint (add --overwrite_output_dir to replace what is there)."
            )
        logger.info("Resuming from %s", found)
        return str(found)
    path = Path(str(value))
    if not path.is_dir():
        raise ConfigError(f"--resume_from_checkpoint: {str(value)!r} is not a checkpoint directory.")
    problem = checkpoint_problem(path)
    if problem:
        raise ConfigError(f"--resume_from_checkpoint {str(value)!r} is incomplete ({problem}); pass 'latest' instead.")
    return str(path)


def check_same_run(checkpoint: str, identity: dict[str, Any]) -> None:
    """Refuse a resume whose task, base model, labels or strategy differ from the checkpoint's, naming the change."""
    try:
        recorded = json.loads(Path(checkpoint, RUN_IDENTITY_FILENAME).read_text())
    except (OSError, ValueError):
        logger.warning("%s records no run identity (an older checkpoint): resuming without checking it.", checkpoint)
        return
    changed = [key for key in identity if key in recorded and recorded[key] != identity[key]]
    if changed:
        key = changed[0]
        raise ConfigError(
            f"--resume_from_checkpoint {checkpoint}: the run's {key.replace('_', ' ')} changed "
            f"(checkpoint: {_short(recorded[key])}, now: {_short(identity[key])}); resume with the same settings and "
            "data, or start a new run (--overwrite_output_dir or another --output_dir)."
        )


class RecordRunIdentity(TrainerCallback):
    """Writes what run a checkpoint belongs to into every checkpoint the Trainer saves."""

    def __init__(self, identity: dict[str, Any]):
        self.identity = identity

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir, f"checkpoint-{state.global_step}")
            if folder.is_dir():
                (folder / RUN_IDENTITY_FILENAME).write_text(json.dumps(self.identity, indent=2))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value  # "zéro", not "z\u00e9ro"
    return text if len(text) <= 80 else text[:77] + "..."


def remove_incomplete_checkpoints(output_dir: str | Path, after_step: int) -> list[str]:
    """Delete the checkpoints above ``after_step`` that a stop or a full disk cut short (their space is freed, and
    nothing half-written is left looking like a checkpoint); complete ones stay. Returns the names removed."""
    removed = []
    for path in Path(output_dir).glob("checkpoint-*"):
        match = _CHECKPOINT.match(path.name)
        if match and int(match.group(1)) > after_step and path.is_dir():
            if checkpoint_problem(path) is not None or not (path / RUN_IDENTITY_FILENAME).exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
    return removed


def checkpoint_step(checkpoint: str | Path | None) -> int:
    """The global step of a ``checkpoint-N`` directory (0 for none)."""
    match = _CHECKPOINT.match(Path(checkpoint).name) if checkpoint else None
    return int(match.group(1)) if match else 0
