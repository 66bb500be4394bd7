"""What a model reference (``--model_name_or_path`` and the tower flags) points at, in one place.

The model loaders turn a reference into something timm or transformers can load (:func:`resolve_image_source`,
:func:`resolve_text_source`); the model card turns the same reference into a Hub repo id for its metadata, or says it
is local (:func:`hub_model_id`). Keeping both here means a reference can never load from one place and be credited to
another.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ..config import (
    BUILTIN_PREFIX,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_TEXT_MODEL,
    IMAGE_CLASSIFICATION,
    TEXT_CLASSIFICATION,
    ModelArguments,
)
from ..exceptions import ConfigError
from .builtin import builtin_checkpoint, builtin_checkpoint_dir, list_builtin_models

CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass
class ModelSource:
    """Where an image checkpoint comes from, resolved to something ``timm.create_model`` understands."""

    timm_name: str  # a registered name, 'hf-hub:...', 'local-dir:...' or 'builtin:...'
    checkpoint_file: str | None = None  # a bare weights file, loaded strictly after the model is built
    reference: str = ""  # what the user asked for, recorded in the saved config / model card


@dataclass
class TextModelSource:
    path: str  # a local folder or a Hub id, as transformers' from_pretrained takes it
    reference: str  # what the user asked for (recorded as the base model)


def resolve_image_source(args: ModelArguments) -> ModelSource:
    """Turn ``--model_name_or_path`` into a timm source, failing fast (with close names) if it cannot be one."""
    name, architecture, revision = (
        args.model_name_or_path or DEFAULT_IMAGE_MODEL,
        args.architecture,
        args.model_revision,
    )
    if name.startswith(BUILTIN_PREFIX):
        available = list_builtin_models(IMAGE_CLASSIFICATION)
        if name not in available:
            raise ConfigError(f"--model_name_or_path: no built-in image checkpoint {name!r}; available: {available}.")
        return ModelSource(timm_name=name, reference=name)  # materialised lazily, when the model is built
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise ConfigError(f"--model_name_or_path: directory {name!r} has no config.json (timm format expected).")
        return ModelSource(timm_name=f"local-dir:{os.path.abspath(name)}", reference=os.path.abspath(name))
    if os.path.isfile(name):
        if not name.endswith(CHECKPOINT_SUFFIXES):
            raise ConfigError(
                f"--model_name_or_path: {name!r} is not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})."
            )
        if not architecture:
            raise ConfigError(f"--model_name_or_path {name!r} is a bare checkpoint: also pass --architecture NAME.")
        check_timm_name(architecture, flag="--architecture")
        return ModelSource(timm_name=architecture, checkpoint_file=os.path.abspath(name), reference=name)
    if name.startswith("local-dir:"):
        return ModelSource(timm_name=name, reference=name)
    if "/" in name:
        if name.endswith(CHECKPOINT_SUFFIXES) or name.startswith((".", "/")):
            raise ConfigError(f"--model_name_or_path: file or directory {name!r} does not exist.")
        original, name = name, f"hf-hub:{name}"
    else:
        original = name
    if name.startswith("hf-hub:"):
        if revision != "main" and "@" not in name:
            name = f"{name}@{revision}"  # timm's syntax for a Hub revision
        return ModelSource(timm_name=name, reference=original)
    if revision != "main":
        raise ConfigError(f"--model_revision applies to Hub checkpoints only, not to {name!r}.")
    check_timm_name(name, flag="--model_name_or_path")
    return ModelSource(timm_name=name, reference=name)


def check_timm_name(name: str, flag: str) -> None:
    import timm

    if timm.is_model(name):
        return
    candidates = timm.list_models() + list_builtin_models(IMAGE_CLASSIFICATION)
    close = difflib.get_close_matches(name.split(".")[0], candidates, n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    raise ConfigError(
        f"{flag}: {name!r} is not a timm model, a Hub id (org/name), a directory or a checkpoint file.{hint}"
    )


def resolve_text_source(args: ModelArguments) -> TextModelSource:
    """Turn ``--model_name_or_path`` into a path or Hub id for transformers' ``from_pretrained``."""
    name = args.model_name_or_path or DEFAULT_TEXT_MODEL
    if name.startswith(BUILTIN_PREFIX):
        available = list_builtin_models(TEXT_CLASSIFICATION)
        if name not in available:
            raise ConfigError(
                f"--model_name_or_path: no built-in text checkpoint {name!r}; available: {', '.join(available)}."
            )
        return TextModelSource(path=str(builtin_checkpoint_dir(name)), reference=name)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise ConfigError(f"--model_name_or_path: directory {name!r} has no config.json (transformers format).")
        return TextModelSource(path=os.path.abspath(name), reference=os.path.abspath(name))
    if name.startswith((".", "/")) or os.path.isfile(name):
        raise ConfigError(f"--model_name_or_path: {name!r} is not a transformers model directory.")
    return TextModelSource(path=name, reference=name)  # a Hub id, e.g. 'bert-base-uncased' or 'org/name'


def is_local_reference(reference: str) -> bool:
    """A file, a directory or a built-in: nothing the Hub's metadata could link to."""
    return (
        reference.startswith(("local-dir:", BUILTIN_PREFIX, "/", "./", "../", "~"))
        or os.path.isabs(reference)
        or reference.endswith(CHECKPOINT_SUFFIXES)
    )


def is_valid_repo_id(name: str) -> bool:
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def hub_model_id(reference: str, task: str) -> str | None:
    """The Hub repo behind a model reference: a built-in's Hub twin, a timm name's ``hf_hub_id``, a Hub id; None for
    local files and directories."""
    if reference.startswith(BUILTIN_PREFIX):
        builtin = builtin_checkpoint(reference)
        return builtin.hub_id if builtin is not None else None
    name = reference.removeprefix("hf-hub:").split("@")[0]
    if not name or is_local_reference(reference):
        return None
    if task == IMAGE_CLASSIFICATION and "/" not in name:  # a timm model name: timm knows its Hub repo
        from timm.models import get_pretrained_cfg

        try:
            cfg = get_pretrained_cfg(name)
        except RuntimeError:  # an unknown pretrained tag
            return None
        return cfg.hf_hub_id if cfg is not None and cfg.hf_hub_id else None
    return name if is_valid_repo_id(name) else None


def display_name(reference: str) -> str:
    """A reference without the user's directory layout: local paths are shown by their last component only."""
    name = reference.removeprefix("local-dir:")
    return Path(name).name if is_local_reference(reference) and not reference.startswith(BUILTIN_PREFIX) else name
