"""Push a finished run to the Hub, as a repo in its library's native format with its model card.

Why not the Trainer's own ``push_to_hub``: it creates the repo before training, pushes checkpoints as they are saved,
and writes its own card; here a repo gets one commit of a complete, verified run directory, or nothing, and
``hf-transfer push`` retries a failed push from the files on disk. The token goes only to huggingface_hub: it is
never stored, logged or put in a message (``token=None`` lets huggingface_hub use ``HF_TOKEN`` or the stored login).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, HTTPError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from ..exceptions import ConfigError
from .artifacts import FORMAT_FILES, inspect_run
from .card_writer import write_model_card

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)


class PushError(RuntimeError):
    """The Hub refused the push or could not be reached. The local run is intact; the message says how to retry."""


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str
    commit: str  # the branch head after the push; unchanged when every file was already there
    url: str
    files: list[str]


@dataclass(frozen=True)
class HubPushSettings:
    """The Trainer's hub flags, moved out of ``TrainingArguments`` so that the Trainer never acts on them."""

    repo_id: str
    private: bool | None
    revision: str | None
    token: str | None = field(default=None, repr=False)  # never in a repr: not in logs or assertion messages

    @classmethod
    def take_from(cls, training: TrainingArguments) -> HubPushSettings | None:
        """Read and clear ``push_to_hub``/``hub_token`` (the Trainer pickles its arguments into
        ``training_args.bin``); validate the rest before any heavy work. None when no push was asked for."""
        token, training.hub_token = training.hub_token, None
        push, training.push_to_hub = training.push_to_hub, False
        if not push:
            return None
        repo_id = training.hub_model_id or Path(training.output_dir).resolve().name
        check_repo_id(repo_id, "--hub_model_id")
        if constants.HF_HUB_OFFLINE:
            raise ConfigError("--push_to_hub needs the network, but HF_HUB_OFFLINE is set: unset it to push.")
        return cls(repo_id, training.hub_private_repo, training.hub_revision, token)


def check_repo_id(repo_id: str, flag: str = "--repo-id") -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ConfigError(f"{flag} {repo_id!r} is not a valid Hub repo id ('name' or 'namespace/name').") from err


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Push the run in ``output_dir`` to the model repo ``repo_id`` (created if needed), on branch ``revision``.

    The directory is checked first (:class:`~hf_transfer.hub.artifacts.IncompleteRunError` if weights or configs are
    missing or truncated) and the card is rendered for this repo before anything is sent. Only the loadable model,
    the card, its figures and the run's result files are pushed (see ``RunArtifacts.files_to_push``); stale
    format-defining files left in the repo by an earlier push (an adapter after a full model, say) are deleted in the
    same commit. Files identical to the repo's are not uploaded again, and a push that changes nothing makes no
    commit. ``private`` applies when the repo is created. Raises :class:`PushError` when the Hub refuses or cannot
    be reached.
    """
    check_repo_id(repo_id)
    inspect_run(output_dir)  # fail on an incomplete run before touching the network
    api = HfApi(token=token)
    revision = revision if revision not in (None, "", "main") else None
    retry = f"hf-transfer push {output_dir} --repo-id {repo_id}" + (f" --revision {revision}" if revision else "")
    retry += " --private" if private else ""
    try:
        full_id = repo_id if "/" in repo_id else f"{api.whoami()['name']}/{repo_id}"
    except (HTTPError, OSError) as err:
        raise PushError(_failure(err, repo_id, output_dir, retry, token)) from None
    card = write_model_card(output_dir, full_id, revision)  # the card names the repo: render it before sending
    files = inspect_run(output_dir).files_to_push()
    root = Path(output_dir)
    additions = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=_content(root, name)) for name in files]
    logger.info("Pushing %d files from %s to %s: %s", len(files), output_dir, full_id, ", ".join(files))
    try:
        url = api.create_repo(full_id, private=private, exist_ok=True)
        if revision:
            api.create_branch(full_id, branch=revision, exist_ok=True)
        stale = [
            CommitOperationDelete(path_in_repo=name)
            for name in api.list_repo_files(full_id, revision=revision)
            if name not in files and any(fnmatch(name, pattern) for pattern in FORMAT_FILES)
        ]
        # One commit: the repo never shows a half-pushed run. Unchanged files are skipped by huggingface_hub, and a
        # commit with nothing left to do is not made.
        commit = api.create_commit(
            full_id,
            operations=[*stale, *additions],
            commit_message=commit_message or f"Upload {root.resolve().name} with hf_transfer",
            revision=revision,
        )
    # HTTP errors, no connection, timeouts, offline mode; RuntimeError: huggingface_hub's "Error while uploading" when
    # the connection drops mid-upload
    except (HTTPError, OSError, RuntimeError) as err:
        raise PushError(_failure(err, repo_id, output_dir, retry, token)) from None
    logger.info("Pushed %s (with %s) to %s", output_dir, card.name, commit.commit_url)
    return PushResult(full_id, revision or "main", commit.oid, str(url), files)


# The run's own records: they hold the pusher's absolute paths (output_dir, logging_dir, best checkpoint, data files).
_LOCAL_RECORDS = ("hf_transfer_config.json", "trainer_state.json")


def _content(root: Path, name: str) -> str | bytes:
    """What the repo gets for ``name``: the file, or for the run's records a copy whose local paths are portable
    (the run directory becomes ``.``, the home directory ``~``), so a public repo does not map the pusher's disk."""
    path = root / name
    if name not in _LOCAL_RECORDS:
        return str(path)
    text = path.read_text(encoding="utf-8")
    for local, shown in ((str(root.resolve()), "."), (str(root.absolute()), "."), (str(Path.home()) + "/", "~/")):
        text = text.replace(local, shown)
    return text.encode("utf-8")


def _failure(err: Exception, repo_id: str, output_dir: str | Path, retry: str, token: str | None) -> str:
    # `from None` at the raise sites: the client's exception chain holds request details, and this line says it all
    reason = _explain(err, repo_id)
    return _redact(f"push to {repo_id} failed: {reason} The run in {output_dir} is intact; retry with: {retry}", token)


def _explain(err: Exception, repo_id: str) -> str:
    """One line a user can act on, rather than the client's multi-line HTTP dump."""
    if isinstance(err, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to push."
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code
        if status == 401:
            return (
                "the Hub refused the token (401 Unauthorized): pass --token (--hub_token in recipes), set HF_TOKEN "
                "or run `hf auth login`."
            )
        if status == 403:
            return f"this token may not write to {repo_id} (403 Forbidden)."
        detail = err.server_message or str(err).splitlines()[0]
        return f"the Hub answered {status}: {' '.join(detail.split())}."
    detail = " ".join(str(err).split())
    if isinstance(err, HTTPError):
        return f"could not reach the Hub at {constants.ENDPOINT} ({type(err).__name__}: {detail})."
    return f"{type(err).__name__}: {detail}."


def _redact(message: str, token: str | None) -> str:
    return message.replace(token, "***") if token else message
