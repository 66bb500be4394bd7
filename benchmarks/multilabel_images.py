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
constant prediction (the most frequent shape and colour) shows what no learning scores. Each configuration runs
through ``harness.py``: a fresh process that imports a copy of ``hf_transfer/`` taken at the start, with a temporary
``HF_TRANSFER_CACHE`` for its frozen features. A markdown table goes to stdout and ``<out>/tables.md``; raw numbers to
``<out>/results.json``, one log per configuration to ``<out>/logs/``.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

BENCH = "hf_transfer-multilabel-images-bench"
IMAGE_MODEL = "builtin:efficientnet_lite0"  # the toolkit's default image model (``DEFAULT_IMAGE_MODEL``)
DATASET = "builtin:easy_vqa"
THREADS = 2  # torch/OpenMP threads per configuration
TIMEOUT_S = 3600  # per configuration
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


def write_tag_csv(source: Path, split: str, limit: int, out: Path, seed: int = 0) -> tuple[Path, dict[str, list[str]]]:
    """A seeded sample of ``limit`` tagged images of easy-vqa's ``split`` (in ``source``) as a csv of image path and
    JSON list."""
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

    from hf_transfer.training.task_metrics import multilabel_metrics

    names = sorted({tag for tags in train.values() for tag in tags})
    counts = collections.Counter(tag for tags in train.values() for tag in tags)
    guess = {max(group, key=lambda tag: counts[tag]) for group in (SHAPES, COLOURS)}
    logits = np.array([[10.0 if name in guess else -10.0 for name in names]] * len(test))
    references = np.array([[float(name in tags) for name in names] for tags in test.values()])
    return multilabel_metrics()(EvalPrediction(predictions=logits, label_ids=references))


def worker_main(result_path: Path, args: list[str]) -> None:
    """Runs in the subprocess (``--worker RESULT SPEC_JSON``): one configuration through the public API, ``fine_tune``
    timed."""
    spec = json.loads(args[0])
    harness.start_worker()
    import hf_transfer as ht
    from hf_transfer.config import IMAGE_CLASSIFICATION

    configuration = Configuration(**spec["configuration"])
    config = ht.RecipeConfig(
        model=ht.ModelArguments(model_name_or_path=IMAGE_MODEL, from_scratch=configuration.from_scratch),
        data=ht.DataArguments(
            train_file=spec["train"],
            validation_file=spec["test"],
            label_column_name=TAG_COLUMN,
            image_size=spec["image_size"],
            no_augment=True,  # a crop could cut the shape away, a colour jitter change its colour
        ),
        strategy=ht.StrategyArguments(strategy=configuration.strategy),
        training=ht.default_training_arguments(
            IMAGE_CLASSIFICATION,
            output_dir=spec["output_dir"],
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
    result_path.write_text(json.dumps(metrics))


def run(
    bench: harness.Bench, configuration: Configuration, train: Path, test: Path, image_size: int, out: Path
) -> dict[str, float]:
    """One configuration in a measured process; its metrics, ``wall_s`` being ``fine_tune``'s own time."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", configuration.name)  # "full, random init" → full_random_init
    spec = {
        "configuration": asdict(configuration),
        "train": str(train),
        "test": str(test),
        "image_size": image_size,
        "output_dir": str(out / slug),
    }
    target = out / "logs" / f"{slug}.json"
    measured = bench.run(__file__, [json.dumps(spec)], out / "logs" / f"{slug}.log", target, TIMEOUT_S)
    return {**json.loads(target.read_text()), "process_s": measured.seconds}


def render(results: dict[str, dict], baseline: dict[str, float], setup: dict, command: str) -> str:
    lines = [
        f"### Multi-label images: easy-vqa shape + colour tags (`{IMAGE_MODEL}`)" + setup["quick_note"],
        "",
        f"{setup['train']} training / {setup['test']} held-out test-split images, 11 tags (3 shapes, 8 colours; two "
        f"per image), {setup['image_size']} px, no augmentation, batch 32, seed 0. Command: `{command}`",
        "",
    ]
    rows = [
        [
            name,
            f"{m['learning_rate']:g}",
            m["epochs"],
            f"{int(m['trainable_parameters']):,}",
            f"{m['eval_micro_f1']:.3f}",
            f"{m['eval_macro_f1']:.3f}",
            f"{m['eval_subset_accuracy']:.3f}",
            f"{m['train_runtime']:.1f}",
        ]
        for name, m in results.items()
    ]
    constant = [f"{baseline[k]:.3f}" for k in ("micro_f1", "macro_f1", "subset_accuracy")]
    rows.append(["constant: most frequent shape + colour", "", "", "", *constant, ""])
    columns = (
        "configuration",
        "lr",
        "epochs",
        "trainable params",
        "micro-F1",
        "macro-F1",
        "subset accuracy",
        "train time (s)",
    )
    return "\n".join([*lines, *harness.markdown_table(columns, rows)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_samples", type=int, default=1000)
    parser.add_argument("--eval_samples", type=int, default=500)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--out", default="outputs/benchmarks/multilabel_images")
    parser.add_argument("--quick", action="store_true", help="A smoke check: 64/64 images, one epoch each.")
    args = harness.parse_args(parser, argv, worker=worker_main)
    if args is None:
        return 0
    if args.quick:
        args.train_samples, args.eval_samples = 64, 64
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with harness.session(BENCH, threads=THREADS, checkpoints=(IMAGE_MODEL,), datasets=(DATASET,)) as bench:
        source = Path(bench.folders[DATASET])
        train, train_tags = write_tag_csv(source, "train", args.train_samples, out)
        test, test_tags = write_tag_csv(source, "test", args.eval_samples, out)
        results = {}
        for configuration in configurations(args.quick):
            metrics = run(bench, configuration, train, test, args.image_size, out)
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
    command = harness.command_line(__file__, argv)
    tables = render(results, baseline, setup, command)
    (out / "tables.md").write_text(tables)
    (out / "results.json").write_text(json.dumps({"setup": setup, "results": results, "constant": baseline}, indent=2))
    print(tables)
    return 0


if __name__ == "__main__":
    sys.exit(main())
