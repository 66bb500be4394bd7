"""``hf-transfer``: train (the recipes' flags), predict, push, cache, study, rank and strategies.

Every subcommand parses its flags through ``HfArgumentParser`` dataclasses (:mod:`hf_transfer.arguments`): help, types
and one-line errors come from one place, and ``train``/``study``/``rank`` read ``--config`` YAML with the recipe's own
dataclasses. Nothing heavy is imported before a subcommand needs it: ``hf-transfer --help``, ``strategies`` and
``cache list`` start without torch or the Trainer.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError, DataError, RunError

# Set when a console script or recipe runs this module: the process ends with the call (in-process callers, tests
# included, keep their signal handlers).
_AS_PROGRAM = False


@dataclass
class PredictArguments:
    model: str = field(
        metadata={"help": "Output directory of a fine-tuning run (an image+text model: or a Hub repo)."}
    )
    images: list[str] = field(metadata={"help": "Image files.", "positional": True})
    top_k: int = field(default=5, metadata={"help": "How many labels per image."})
    text: list[str] | None = field(
        default=None,
        metadata={
            "help": "Image+text models: the text that goes with the images; once for all of them, or once per image.",
            "action": "append",
        },
    )


@dataclass
class PushArguments:
    output_dir: str = field(metadata={"help": "The --output_dir of a finished run.", "positional": True})
    repo_id: str = field(metadata={"help": "'namespace/name', or 'name' for your namespace."})
    private: bool = field(
        default=False,
        metadata={"help": "Create the repo private (an existing repo keeps its).", "action": "store_true"},
    )
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created from main if needed)."})
    token: str | None = field(
        default=None, metadata={"help": "Hub token (default: HF_TOKEN, else the stored `hf auth login`)."}
    )


@dataclass
class CacheArguments:
    action: str = field(
        metadata={"help": "list or clear the entries.", "choices": ["list", "clear"], "positional": True}
    )
    digests: list[str] = field(
        default_factory=list,
        metadata={"help": "clear: only the entries whose digest starts with these.", "positional": True},
    )


@dataclass
class StrategiesArguments:
    markdown: bool = field(default=False, metadata={"help": "As the README's markdown table."})


def run_recipe(task: str | None, argv: list[str] | None = None) -> int:
    """Parse flags/YAML, fine-tune, print the final metrics. User errors exit with status 2 and one clear line; a
    failed ``--push_to_hub`` exits with status 1, the run saved (``hf-transfer push`` retries it). ``task`` None:
    ``hf-transfer train``, whose ``--task`` flag chooses it.

    Ctrl-C and SIGTERM end in one line from the first import on: the libraries' imports and the resolution take
    seconds before ``fine_tune`` installs its own handlers (a Ctrl-C there printed an import's traceback)."""
    global _AS_PROGRAM
    _AS_PROGRAM = _AS_PROGRAM or argv is None  # a recipe script: the process ends with this call
    name = "hf-transfer train" if task is None else Path(sys.argv[0]).name if argv is None else f"the {task} run"
    try:
        with _signals_as_one_line("train", name=name):
            return _fine_tune_and_report(task, argv)
    except (ConfigError, DataError, RunError, KeyboardInterrupt) as err:
        return _fail(err)


def _fine_tune_and_report(task: str | None, argv: list[str] | None) -> int:
    from transformers.utils import logging as hf_logging

    from .hub import PushError
    from .recipe import TaskArguments, parse_arguments, parse_config, resolve_config
    from .training import fine_tune

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    hf_logging.set_verbosity_warning()
    _quiet_http_request_logs()
    if task is None:
        parsed, _ = parse_arguments(argv, task=None, commands=(TaskArguments,), prog="hf-transfer train")
        config = resolve_config(parsed)
    else:
        config = parse_config(argv, task=task)
    try:
        result = fine_tune(config)
    except PushError as err:
        return _fail(err)
    if result.trainer is None or result.trainer.is_world_process_zero():
        summary = {k: v for k, v in result.metrics.items() if k.startswith("eval_") or k == "train_runtime"}
        print(json.dumps({"output_dir": result.output_dir, **summary}, indent=2))
    return 0


def _train(argv: list[str]) -> int:
    return run_recipe(None, argv)


def _predict(argv: list[str]) -> int:
    """Image classifiers as before; an image+text model (a run directory, or a Hub repo given with --text) takes
    --text once (the same text for every image) or once per image."""
    args = _parse(PredictArguments, "predict", argv)
    from .inference import is_fusion_model_dir, predict_images, predict_multimodal

    texts = None
    try:
        if args.text or is_fusion_model_dir(args.model):
            if not args.text:
                raise ValueError(f"{args.model} is an image+text model: pass --text (once, or once per image).")
            if len(args.text) not in (1, len(args.images)):
                raise ValueError(
                    f"--text was given {len(args.text)} times for {len(args.images)} images: give it once (the "
                    "same text for every image) or once per image."
                )
            texts = args.text * len(args.images) if len(args.text) == 1 else args.text
            results = predict_multimodal(args.model, args.images, texts, top_k=args.top_k)
        else:
            results = predict_images(args.model, args.images, top_k=args.top_k)
    except (OSError, ValueError) as err:  # FileNotFoundError included; OSError: a repo that cannot be loaded
        return _fail(err)
    for i, (path, top) in enumerate(zip(args.images, results)):
        print(f"{path}  {texts[i]!r}" if texts else path)
        for label, prob in top:
            print(f"  {prob:7.4f}  {label}")
    return 0


def _fail(err: Exception) -> int:
    """One line on stderr, and the exit status: 1 when the environment failed (the Hub refused or could not be
    reached, the disk filled up: what was saved is kept and the line says how to continue), 2 for anything the user
    must fix (a flag, the data, an incomplete run); a run stopped by a signal: its own (130 Ctrl-C, 143 SIGTERM). The
    environment's errors are RuntimeErrors (``RunError``, ``hub.PushError``), the user's ValueErrors or OSErrors:
    telling them apart needs no import of the hub code."""
    from .exceptions import Interrupted

    if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunError):  # Ctrl-C before the run began
        err = Interrupted("Stopped by SIGINT before the run started; nothing was saved.", exit_status=130)
    status = getattr(err, "exit_status", None)
    if status is not None and _AS_PROGRAM:  # stopping: a second Ctrl-C now would only cut the one line and the exit
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
    print(f"error: {err}", file=sys.stderr)
    return status if status is not None else 1 if isinstance(err, RuntimeError) else 2


def _quiet_http_request_logs() -> None:
    """huggingface_hub's HTTP client logs every request at INFO: a push would bury the one line that matters."""
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _push(argv: list[str]) -> int:
    """Push a finished run. Status 2: not a complete run or a bad repo id; 1: the Hub refused or was unreachable."""
    args = _parse(PushArguments, "push", argv)
    from .hub import IncompleteRunError, PushError, push_to_hub

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    _quiet_http_request_logs()
    try:
        result = push_to_hub(
            args.output_dir, args.repo_id, private=args.private or None, revision=args.revision, token=args.token
        )
    except (ConfigError, IncompleteRunError, PushError) as err:
        return _fail(err)
    summary = {"repo_id": result.repo_id, "revision": result.revision, "commit": result.commit, "url": result.url}
    print(json.dumps(summary, indent=2))
    return 0


def _study(argv: list[str]) -> int:
    return _study_or_rank("study", argv)


def _rank(argv: list[str]) -> int:
    return _study_or_rank("rank", argv)


def _study_or_rank(command: str, argv: list[str]) -> int:
    """``study``: run (or resume) a transfer study and print its headline; ``rank``: score checkpoints."""
    from transformers.utils import logging as hf_logging

    from .study import rank_from_argv, study_from_argv

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    hf_logging.set_verbosity_warning()
    try:
        if command == "rank":
            print(rank_from_argv(argv))
            return 0
        summary = study_from_argv(argv)
    except (ConfigError, DataError, RunError) as err:
        return _fail(err)
    print(summary.headline())
    return 1 if summary.failed_cells else 0


def _cache(argv: list[str]) -> int:
    """``cache list``: every entry with its size, age and what it holds; ``cache clear``: free them (all, or by
    digest prefix)."""
    args = _parse(CacheArguments, "cache", argv)
    from .training.feature_store import FeatureStore

    store = FeatureStore()
    try:
        entries = store.entries(unreadable=True)
        root = store.root
    except OSError as err:
        return _fail(ConfigError(f"HF_TRANSFER_CACHE: the cache folder cannot be used ({err})."))
    if args.action == "list":
        for entry in entries:
            created = entry.created.astimezone().strftime("%Y-%m-%d %H:%M")
            print(f"{entry.digest[:12]}  {_human_size(entry.size_bytes):>9}  {created}  {entry.description}")
        print(f"{len(entries)} entries, {_human_size(sum(e.size_bytes for e in entries))} in {root}")
        return 0
    chosen = [e.digest for e in entries if not args.digests or any(e.digest.startswith(d) for d in args.digests)]
    if args.digests and not chosen:
        return _fail(
            ConfigError(f"no cache entry starts with {', '.join(args.digests)}; see `hf-transfer cache list`.")
        )
    freed = store.clear(None if not args.digests else chosen)
    print(f"freed {_human_size(freed)} ({len(chosen)} entries) in {root}")
    return 0


def _human_size(count: float) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def _strategies(argv: list[str]) -> int:
    args = _parse(StrategiesArguments, "strategies", argv)
    from .strategies.catalog import strategy_table_markdown, strategy_table_text

    print(strategy_table_markdown() if args.markdown else strategy_table_text())
    return 0


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[list[str]], int]


COMMANDS: dict[str, Command] = {
    "train": Command("Fine-tune; takes every recipe flag (see `hf-transfer train --help`).", _train),
    "predict": Command("Top-k labels for images (or image+text pairs), from a saved model directory.", _predict),
    "push": Command(
        "Push a finished run to the Hub in its native format, with its model card (or retry a failed push).", _push
    ),
    "cache": Command("The frozen-feature cache under HF_TRANSFER_CACHE: list or clear it.", _cache),
    "study": Command(
        "Checkpoints × strategies × labelled examples × seeds against scratch: what transfer buys.", _study
    ),
    "rank": Command("Score checkpoints' frozen features (LogME, linear probe) before fine-tuning.", _rank),
    "strategies": Command("List the registered transfer strategies and their settings.", _strategies),
}


def _parse(arguments: type, command: str, argv: list[str]) -> Any:
    """A subcommand's flags as its dataclass (``--help`` prints and exits; errors raise one-line ``ConfigError``)."""
    from .arguments import ArgumentParser, parse_into_dataclasses

    parser = ArgumentParser(arguments, prog=f"hf-transfer {command}", description=COMMANDS[command].help)
    (parsed,) = parse_into_dataclasses(parser, argv)
    return parsed


def _overview() -> argparse.ArgumentParser:
    """``hf-transfer --help``: the subcommands and what each does (a plain parser: no subcommand is imported)."""
    parser = argparse.ArgumentParser(prog="hf-transfer", description="Transfer learning on the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    global _AS_PROGRAM
    _AS_PROGRAM = _AS_PROGRAM or argv is None  # the console script: the process ends with this call
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        _overview().print_help()
        return 0
    if not argv:
        return _fail(ConfigError(f"give a command: {', '.join(COMMANDS)} (see `hf-transfer --help`)."))
    command = COMMANDS.get(argv[0])
    if command is None:
        close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return _fail(
            ConfigError(
                f"unknown command {argv[0]!r}.{hint} Commands: {', '.join(COMMANDS)} (see `hf-transfer --help`)."
            )
        )
    try:
        with _signals_as_one_line(argv[0]):
            return command.run(argv[1:])
    except ConfigError as err:  # a flag the subcommand's parser rejected
        return _fail(err)
    except KeyboardInterrupt as err:
        return _fail(err)


# What a command stopped by Ctrl-C or SIGTERM leaves, and how to go on (`train` says it itself, with its checkpoint).
_AFTER_A_STOP = {
    "push": "a push commits all its files at once or none of them: run the same command again",
    "study": "its finished cells are kept: run the same command again to resume it",
    "train": "it had not started training, nothing was saved: run the same command again",
}


@contextlib.contextmanager
def _signals_as_one_line(command: str, name: str | None = None):
    """Ctrl-C and SIGTERM end every command in one line with 130 / 143 (Python's own: a traceback, or for SIGTERM no
    word at all). A run (``train``, a recipe) is said as ``name``; ``fine_tune`` handles its own signals while it
    works, with what it kept."""
    from .exceptions import Interrupted

    if command == "train" and name is None:  # main(): run_recipe opens its own, which names the run
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    received: list[int] = []

    def interrupted(signum: int) -> Interrupted:
        after = _AFTER_A_STOP.get(command, "nothing was saved: run the same command again")
        said = name or f"hf-transfer {command}"
        return Interrupted(f"{said} stopped by {signal.Signals(signum).name}; {after}.", 128 + signum)

    def stop(signum: int, frame) -> None:
        received.append(signum)
        raise interrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt as err:  # Ray's blocking calls turn any signal handler's exception into a bare one
        if received and not isinstance(err, Interrupted):
            raise interrupted(received[0]) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
