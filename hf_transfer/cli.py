"""``hf-transfer`` console entry: ``train`` (same flags as the recipes), ``predict``, ``strategies``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .exceptions import ConfigError, DataError

RECIPE_TASKS = {"image-classification", "text-classification"}


def run_recipe(task: str, argv: list[str] | None = None) -> int:
    """Parse flags/YAML, fine-tune, print the final metrics. User errors exit with status 2 and one clear line."""
    from transformers.utils import logging as hf_logging

    from .config import parse_config
    from .training.run import fine_tune

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    hf_logging.set_verbosity_warning()
    try:
        config = parse_config(argv, task=task)
        result = fine_tune(config)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.trainer is None or result.trainer.is_world_process_zero():
        summary = {k: v for k, v in result.metrics.items() if k.startswith("eval_") or k == "train_runtime"}
        print(json.dumps({"output_dir": result.output_dir, **summary}, indent=2))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .inference import predict_images

    try:
        results = predict_images(args.model, args.images, top_k=args.top_k)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, top in zip(args.images, results):
        print(path)
        for label, prob in top:
            print(f"  {prob:7.4f}  {label}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="hf-transfer", description="Transfer learning on the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="Fine-tune; takes every recipe flag (see `hf-transfer train --help`).")
    train.add_argument("--task", default="image-classification", choices=sorted(RECIPE_TASKS))
    predict = commands.add_parser("predict", help="Top-k labels for images, from a saved model directory.")
    predict.add_argument("--model", required=True, help="Output directory of a fine-tuning run.")
    predict.add_argument("--top_k", type=int, default=5)
    predict.add_argument("images", nargs="+", help="Image files.")
    commands.add_parser("strategies", help="List the registered transfer strategies.")

    if argv[:1] == ["train"]:  # everything after `train` belongs to the recipe parser, --help included
        rest = argv[1:]
        task = "image-classification"
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
    from .strategies import list_strategies

    print("\n".join(list_strategies()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
