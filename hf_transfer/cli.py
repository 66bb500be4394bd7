"""``hf-transfer`` console entry: ``train`` (same flags as the recipes), ``predict``, ``push``, ``strategies``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import IMAGE_CLASSIFICATION, TASKS
from .exceptions import ConfigError, DataError, RunError

RECIPE_TASKS = set(TASKS)


def run_recipe(task: str, argv: list[str] | None = None) -> int:
    """Parse flags/YAML, fine-tune, print the final metrics. User errors exit with status 2 and one clear line; a
    failed ``--push_to_hub`` exits with status 1, the run saved (``hf-transfer push`` retries it)."""
    from transformers.utils import logging as hf_logging

    from .hub import PushError
    from .recipe import parse_config
    from .training import fine_tune

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    hf_logging.set_verbosity_warning()
    _quiet_http_request_logs()
    try:
        config = parse_config(argv, task=task)
        result = fine_tune(config)
    except (ConfigError, DataError, PushError, RunError, KeyboardInterrupt) as err:
        return _fail(err)
    if result.trainer is None or result.trainer.is_world_process_zero():
        summary = {k: v for k, v in result.metrics.items() if k.startswith("eval_") or k == "train_runtime"}
        print(json.dumps({"output_dir": result.output_dir, **summary}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Image classifiers as before; an image+text model (a run directory, or a Hub repo given with --text) takes
    --text once (the same text for every image) or once per image."""
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
    must fix (a flag, the data, an incomplete run); a run stopped by a signal: its own (130 Ctrl-C, 143 SIGTERM)."""
    from .exceptions import Interrupted
    from .hub import PushError

    if isinstance(err, KeyboardInterrupt) and not isinstance(err, RunError):  # Ctrl-C before the run began
        err = Interrupted("Stopped by SIGINT before the run started; nothing was saved.", exit_status=130)
    print(f"error: {err}", file=sys.stderr)
    status = getattr(err, "exit_status", None)
    return status if status is not None else 1 if isinstance(err, (PushError, RunError)) else 2


def _quiet_http_request_logs() -> None:
    """huggingface_hub's HTTP client logs every request at INFO: a push would bury the one line that matters."""
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _push(args: argparse.Namespace) -> int:
    """Push a finished run. Status 2: not a complete run or a bad repo id; 1: the Hub refused or was unreachable."""
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


def _cache(args: argparse.Namespace) -> int:
    """``cache list``: every entry with its size, age and what it holds; ``cache clear``: free them (all, or by
    digest prefix)."""
    from .training.feature_store import FeatureStore

    store = FeatureStore()
    try:
        entries = store.entries()
        root = store.root
    except OSError as err:
        return _fail(ConfigError(f"HF_TRANSFER_CACHE: the cache folder cannot be used ({err})."))
    if args.action == "list":
        for entry in entries:
            created = entry.created.astimezone().strftime("%Y-%m-%d %H:%M")
            print(f"{entry.digest[:12]}  {_size(entry.size_bytes):>9}  {created}  {entry.description}")
        print(f"{len(entries)} entries, {_size(sum(e.size_bytes for e in entries))} in {root}")
        return 0
    chosen = [e.digest for e in entries if not args.digests or any(e.digest.startswith(d) for d in args.digests)]
    if args.digests and not chosen:
        return _fail(
            ConfigError(f"no cache entry starts with {', '.join(args.digests)}; see `hf-transfer cache list`.")
        )
    freed = store.clear(None if not args.digests else chosen)
    print(f"freed {_size(freed)} ({len(chosen)} entries) in {root}")
    return 0


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hf-transfer", description="Transfer learning on the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Fine-tune; takes every recipe flag (see `hf-transfer train --help`).")
    train.add_argument("--task", default=IMAGE_CLASSIFICATION, choices=sorted(RECIPE_TASKS))
    predict = commands.add_parser(
        "predict", help="Top-k labels for images (or image+text pairs), from a saved model directory."
    )
    predict.add_argument(
        "--model", required=True, help="Output directory of a fine-tuning run (an image+text model: or a Hub repo)."
    )
    predict.add_argument("--top_k", type=int, default=5)
    predict.add_argument(
        "--text",
        action="append",
        help="Image+text models: the text that goes with the images; once for all of them, or once per image.",
    )
    predict.add_argument("images", nargs="+", help="Image files.")
    push = commands.add_parser(
        "push",
        help="Push a finished run to the Hub in its native format, with its model card (or retry a failed push).",
    )
    push.add_argument("output_dir", help="The --output_dir of a finished run.")
    push.add_argument("--repo-id", "--repo_id", required=True, help="'namespace/name', or 'name' for your namespace.")
    push.add_argument("--private", action="store_true", help="Create the repo private (an existing repo keeps its).")
    push.add_argument("--revision", default=None, help="Branch to push to (created from main if needed).")
    push.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN, else the stored `hf auth login`).")
    cache = commands.add_parser("cache", help="The frozen-feature cache under HF_TRANSFER_CACHE: list or clear it.")
    cache.add_argument("action", choices=["list", "clear"])
    cache.add_argument("digests", nargs="*", help="clear: only the entries whose digest starts with these.")
    commands.add_parser(
        "study", help="Checkpoints × strategies × labelled examples × seeds against scratch: what transfer buys."
    )
    commands.add_parser("rank", help="Score checkpoints' frozen features (LogME, linear probe) before fine-tuning.")
    strategies = commands.add_parser("strategies", help="List the registered transfer strategies and their settings.")
    strategies.add_argument("--markdown", action="store_true", help="As the README's markdown table.")

    if argv[:1] in (["study"], ["rank"]):  # study/rank flags plus every recipe flag
        return _study_or_rank(argv[0], argv[1:])
    if argv[:1] == ["train"]:  # everything after `train` belongs to the recipe parser, --help included
        rest = argv[1:]
        task = IMAGE_CLASSIFICATION
        if "--task" in rest:
            i = rest.index("--task")
            task, rest = rest[i + 1], rest[:i] + rest[i + 2 :]
        if task not in RECIPE_TASKS:
            print(f"error: --task must be one of {sorted(RECIPE_TASKS)}, got {task!r}", file=sys.stderr)
            return 2
        return run_recipe(task, rest)
    args = parser.parse_args(argv)
    if args.command == "predict":
        return _predict(args)
    if args.command == "push":
        return _push(args)
    if args.command == "cache":
        return _cache(args)
    from .strategies.catalog import strategy_table_markdown, strategy_table_text

    print(strategy_table_markdown() if args.markdown else strategy_table_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
