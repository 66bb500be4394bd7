"""Benchmark multi-label image classification on a real multi-label set built from shipped data.

Easy-VQA's 64x64 images (the ``easy-vqa`` package, materialised by ``builtin:easy_vqa``) each show one shape in one
colour; the answers to an image's "what shape ...?" and "what color ...?" questions give it two tags, e.g.
``["circle", "blue"]``, out of 3 shapes + 8 colours (images lacking either question are left out). The tags go into
csvs as JSON lists, the toolkit's csv convention, so the problem type is inferred as multi-label.

Usage (from the repository root)::

    .venv/bin/python benchmarks/multilabel_images.py            # ~2-4 min on 2 CPU cores
    .venv/bin/python benchmarks/multilabel_images.py --quick    # smoke check (tiny budgets)

Every configuration runs ``hf_transfer.fine_tune`` (the public API) on the same training images and is scored on the
same held-out images of easy-vqa's test split: the real pretrained ``builtin:efficientnet_lite0`` with ``linear_probe``
and ``full``, and the same architecture from random initialisation (``full``, ``from_scratch``) as the baseline; a
constant prediction (the most frequent shape and colour) shows what no learning scores. A markdown table goes to
stdout and ``<out>/tables.md``; raw numbers to ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402

import hf_transfer as ht  # noqa: E402
from hf_transfer.config import DEFAULT_IMAGE_MODEL, IMAGE_CLASSIFICATION  # noqa: E402
from hf_transfer.data.builtin import builtin_dataset_dir  # noqa: E402

SHAPES = ("circle", "rectangle", "triangle")
COLOURS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
TAG_COLUMN = "tags"


@dataclass(frozen=True)
class Configuration:
    name: str
    strategy: str
    from_scratch: bool
    learning_rate: float
    epochs: int


def configurations(quick: bool) -> list[Configuration]:
    """A head on frozen features learns fast at a high rate; whole networks get the usual 1e-3 and fewer epochs."""
    probe_epochs, full_epochs = (1, 1) if quick else (10, 5)
    return [
        Configuration("linear_probe", "linear_probe", False, 1e-2, probe_epochs),
        Configuration("full", "full", False, 1e-3, full_epochs),
        Configuration("full, random init", "full", True, 1e-3, full_epochs),
    ]


def image_tags(questions_csv: Path) -> dict[str, list[str]]:
    """Each image's ``[shape, colour]``, from the answers to its "what ...?" questions (yes/no ones say less)."""
    answers: dict[str, set[str]] = collections.defaultdict(set)
    with open(questions_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["question"].startswith("what"):
                answers[row["image"]].add(row["label"])
    tags = {}
    for image, found in answers.items():
        shapes, colours = found & set(SHAPES), found & set(COLOURS)
        if len(shapes) == 1 and len(colours) == 1:
            tags[image] = [*shapes, *colours]
    return tags


def write_tag_csv(split: str, limit: int, out: Path, seed: int = 0) -> tuple[Path, dict[str, list[str]]]:
    """A seeded sample of ``limit`` tagged images of easy-vqa's ``split`` as a csv of image path and JSON list."""
    source = builtin_dataset_dir("builtin:easy_vqa")
    tags = image_tags(source / f"{split}.csv")
    chosen = sorted(random.Random(seed).sample(sorted(tags), min(limit, len(tags))))
    path = out / f"{split}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", TAG_COLUMN])
        writer.writerows((str(source / image), json.dumps(tags[image])) for image in chosen)
    return path, {image: tags[image] for image in chosen}


def constant_prediction_metrics(train: dict[str, list[str]], test: dict[str, list[str]]) -> dict[str, float]:
    """The metrics of predicting the training set's most frequent shape and colour for every image."""
    from transformers import EvalPrediction

    from hf_transfer.training.metrics import multilabel_metrics

    names = sorted({tag for tags in train.values() for tag in tags})
    counts = collections.Counter(tag for tags in train.values() for tag in tags)
    guess = {max(group, key=lambda tag: counts[tag]) for group in (SHAPES, COLOURS)}
    logits = np.array([[10.0 if name in guess else -10.0 for name in names]] * len(test))
    references = np.array([[float(name in tags) for name in names] for tags in test.values()])
    return multilabel_metrics()(EvalPrediction(predictions=logits, label_ids=references))


def run(configuration: Configuration, train: Path, test: Path, image_size: int, out: Path) -> dict[str, float]:
    config = ht.RecipeConfig(
        model=ht.ModelArguments(model_name_or_path=DEFAULT_IMAGE_MODEL, from_scratch=configuration.from_scratch),
        data=ht.DataArguments(
            train_file=str(train),
            validation_file=str(test),
            label_column_name=TAG_COLUMN,
            image_size=image_size,
            no_augment=True,  # a crop could cut the shape away, a colour jitter change its colour
        ),
        strategy=ht.StrategyArguments(strategy=configuration.strategy),
        training=ht.default_training_arguments(
            IMAGE_CLASSIFICATION,
            output_dir=str(out / configuration.name.replace(", ", "_").replace(" ", "_")),
            num_train_epochs=configuration.epochs,
            learning_rate=configuration.learning_rate,
            per_device_train_batch_size=32,
            per_device_eval_batch_size=128,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            logging_steps=50,
            disable_tqdm=True,
            seed=0,
        ),
        run=ht.RunArguments(overwrite_output_dir=True),
    )
    started = time.perf_counter()
    result = ht.fine_tune(config)
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["wall_s"] = time.perf_counter() - started
    return metrics


def render(results: dict[str, dict], baseline: dict[str, float], setup: dict, command: str) -> str:
    lines = [
        f"### Multi-label images: easy-vqa shape + colour tags (`{DEFAULT_IMAGE_MODEL}`)" + setup["quick_note"],
        "",
        f"{setup['train']} training / {setup['test']} held-out test-split images, 11 tags (3 shapes, 8 colours; two "
        f"per image), {setup['image_size']} px, no augmentation, batch 32, seed 0. Command: `{command}`",
        "",
        "| configuration | lr | epochs | trainable params | micro-F1 | macro-F1 | subset accuracy | train time (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | {m['learning_rate']:g} | {m['epochs']} | {int(m['trainable_parameters']):,} | "
            f"{m['eval_micro_f1']:.3f} | {m['eval_macro_f1']:.3f} | {m['eval_subset_accuracy']:.3f} | "
            f"{m['train_runtime']:.1f} |"
        )
    lines.append(
        f"| constant: most frequent shape + colour | | | | {baseline['micro_f1']:.3f} | {baseline['macro_f1']:.3f} | "
        f"{baseline['subset_accuracy']:.3f} | |"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_samples", type=int, default=1000)
    parser.add_argument("--eval_samples", type=int, default=500)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--out", default="outputs/benchmarks/multilabel_images")
    parser.add_argument("--quick", action="store_true", help="A smoke check: 64/64 images, one epoch each.")
    args = parser.parse_args(argv)
    if args.quick:
        args.train_samples, args.eval_samples = 64, 64
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, train_tags = write_tag_csv("train", args.train_samples, out)
    test, test_tags = write_tag_csv("test", args.eval_samples, out)
    results = {}
    for configuration in configurations(args.quick):
        metrics = run(configuration, train, test, args.image_size, out)
        results[configuration.name] = {
            **metrics,
            "learning_rate": configuration.learning_rate,
            "epochs": configuration.epochs,
        }
    baseline = constant_prediction_metrics(train_tags, test_tags)
    setup = {
        "train": len(train_tags),
        "test": len(test_tags),
        "image_size": args.image_size,
        "quick_note": " (quick)" if args.quick else "",
    }
    command = " ".join(
        [".venv/bin/python", "benchmarks/multilabel_images.py", *(argv if argv is not None else sys.argv[1:])]
    )
    tables = render(results, baseline, setup, command)
    (out / "tables.md").write_text(tables)
    (out / "results.json").write_text(json.dumps({"setup": setup, "results": results, "constant": baseline}, indent=2))
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
