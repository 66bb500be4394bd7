"""How flags become values: parse (HfArgumentParser + YAML) → data presets → model defaults → pooling → validation.

This is the one resolution step of a run. :func:`resolve_config` fills only what the user left unset (``None``), so it
is idempotent; it runs once per run (``fine_tune`` calls it; a config that is already resolved passes unchanged), and
every ``validate_*`` below only reads. Precedence: task defaults < ``--config file.yaml`` < command line < presets
of a built-in dataset for what is still unset.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainingArguments

from .arguments import ArgumentParser, check_file_values, parse_into_dataclasses
from .config import (
    DEFAULT_MODELS,
    FUSION_METHODS,
    IMAGE_CLASSIFICATION,
    MULTIMODAL_CLASSIFICATION,
    STRATEGIES_CHOSEN_BY_SIZE,
    TASKS,
    TEXT_CLASSIFICATION,
    TRAINING_ARGUMENT_NAMES,
    TRAINING_DEFAULTS,
    DataArguments,
    FusionArguments,
    ModelArguments,
    RunArguments,
)
from .data.builtin import apply_data_presets
from .exceptions import ConfigError
from .models.text import choose_pooling
from .strategies import (
    StrategyArguments,
    StrategySpec,
    check_strategy_arguments,
    get_strategy_class,
    restricted_to,
    strategy_arguments_class,
)
from .strategies.settings import StrategyArgumentsBase

_SECTIONS = ("model", "data", "strategy", "training", "run", "fusion")
STRATEGY_KEY = ("strategy", "strategy")
PROVISIONAL_STRATEGY = "full"  # the default before the data is known (and the default of a non-single-label task)
_RUN_RECORD_KEYS = ("chosen_automatically", "provenance")  # what hf_transfer_config.json adds to the sections


@dataclass
class RecipeConfig:
    """Everything one run needs. Build it in Python, or from argv/YAML with :func:`parse_config`."""

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    strategy: StrategyArgumentsBase = field(default_factory=StrategyArguments)
    training: TrainingArguments | None = None
    run: RunArguments = field(default_factory=RunArguments)
    task: str = IMAGE_CLASSIFICATION
    fusion: FusionArguments = field(default_factory=FusionArguments)
    # (section, field) -> the value resolution chose for a setting the user left unset; recorded in the run's config
    automatic: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    # The config as JSON when it was last resolved: resolving it again is a no-op unless a value changed since.
    resolved_as: str | None = field(default=None, repr=False, compare=False)

    def strategy_spec(self) -> StrategySpec:
        """The run's strategy, parsed: ``--strategy`` for one model; each tower's (``--image_strategy`` /
        ``--text_strategy``, else ``--strategy``) for an image+text model."""
        if self.task != MULTIMODAL_CLASSIFICATION:
            return StrategySpec.parse(self.strategy.strategy)
        chosen = {"image": self.fusion.image_strategy, "text": self.fusion.text_strategy}
        return StrategySpec.per_tower(
            {tower: chosen[tower] or self.strategy.strategy for tower in self.fusion.modality_list()}
        )

    def to_dict(self, training: TrainingArguments | None = None) -> dict[str, Any]:
        """Every section as JSON keeps it (``training``: these arguments instead of ``self.training``)."""
        training = training or self.training
        out: dict[str, Any] = {"task": self.task}
        for name in ("model", "data", "strategy", "run") + (
            ("fusion",) if self.task == MULTIMODAL_CLASSIFICATION else ()
        ):
            out[name] = dataclasses.asdict(getattr(self, name))
        if training is not None:
            out["training"] = json.loads(training.to_json_string())
            out["training"].pop("hub_token", None)
        out["chosen_automatically"] = {f"{section}.{name}": value for (section, name), value in self.automatic.items()}
        return out


@dataclass
class RecipeTrainingArguments(TrainingArguments):
    """``TrainingArguments`` that know which fields the user set: the others came from the recipe's defaults, and the
    data-size defaults may choose them. Not a flag (``init=False``), not saved."""

    set_by_user: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)


def default_training_arguments(task: str = IMAGE_CLASSIFICATION, **overrides: Any) -> TrainingArguments:
    """The task's recipe defaults as ``TrainingArguments`` (CPU when no accelerator is present). ``overrides`` count as
    set by the user: the data-size-aware defaults (training length, learning rate...) never change them."""
    defaults = {k: v for k, v in TRAINING_DEFAULTS[task].items() if k in TRAINING_ARGUMENT_NAMES}
    training = RecipeTrainingArguments(**{**defaults, "use_cpu": not _has_accelerator(), **overrides})
    return mark_user_set(training, set(overrides))


def mark_user_set(training: TrainingArguments, names: set[str]) -> TrainingArguments:
    """Record which fields the user set (the rest came from the recipe's defaults and may be chosen by data size)."""
    if not isinstance(training, RecipeTrainingArguments):
        raise TypeError("Only RecipeTrainingArguments (default_training_arguments, parse_config) record what was set.")
    training.set_by_user = frozenset(names)
    return training


def replace_training(training: TrainingArguments, **changes: Any) -> TrainingArguments:
    """``training`` with ``changes``, built again so that TrainingArguments validates them; what the user set stays
    recorded (``changes`` are the caller's, not the user's)."""
    try:
        replaced = dataclasses.replace(training, **changes)
    except ValueError as err:  # TrainingArguments.__post_init__ rejects bad combinations with ValueError
        raise ConfigError(str(err)) from err
    if isinstance(replaced, RecipeTrainingArguments):
        replaced.set_by_user = getattr(training, "set_by_user", None)
    return replaced


def user_set(training: TrainingArguments, name: str) -> bool:
    """A TrainingArguments built by hand (no record) counts as entirely set by the user: nothing is changed."""
    names = getattr(training, "set_by_user", None)
    return names is None or name in names


def parse_config(
    argv: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
    task: str = IMAGE_CLASSIFICATION,
    resolve: bool = True,
) -> RecipeConfig:
    """Parse ``argv`` (default ``sys.argv[1:]``) over the task's defaults (or ``defaults``) and ``--config`` YAML,
    then resolve it: the returned config is complete and valid. ``resolve=False`` returns it as parsed (a study
    resolves its base itself, without the settings only some of its strategies read)."""
    config, _ = parse_arguments(argv, defaults=defaults, task=task)
    return resolve_config(config) if resolve else config


@dataclass
class TaskArguments:
    """The ``--task`` of the commands that run any task's recipe (``hf-transfer train``, ``study``, ``rank``)."""

    task: str = field(
        default=IMAGE_CLASSIFICATION, metadata={"help": "Which task's recipe (and defaults).", "choices": list(TASKS)}
    )


def parse_arguments(
    argv: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
    task: str | None = IMAGE_CLASSIFICATION,
    commands: tuple[type, ...] = (),
    prog: str | None = None,
) -> tuple[RecipeConfig, tuple[Any, ...]]:
    """The recipe's flags and a command's own argument dataclasses (``commands``, e.g. ``StudyArguments``) in one
    parser: one ``--help``, one ``--config`` YAML file (keys of either), types and one-line errors from one place.
    Returns the config as parsed (not resolved) and one instance per command dataclass.

    ``task`` None: the ``--task`` flag (else the YAML file's ``task``) chooses it, before the task's defaults are
    applied; one of ``commands`` then declares ``task`` (:class:`TaskArguments`). A command dataclass may change the
    recipe's defaults for its task with a ``recipe_defaults(task) -> dict`` static method."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = _peek_flag(argv, "--config")
    from_file = _load_yaml(config_path) if config_path is not None else {}
    if task is None:
        task = _peek_flag(argv, "--task") or from_file.get("task") or IMAGE_CLASSIFICATION
        if task not in TASKS:
            raise ConfigError(f"--task: unknown task {task!r}; choose one of {', '.join(TASKS)}.")
    _check_task(task)
    if "task" in from_file and TaskArguments not in commands:  # a recipe's (or a finished run's) file names its task
        if from_file.pop("task") != task:
            raise ConfigError(f"--config {config_path}: the file is for another task than {task}.")
    arguments = (*commands, ModelArguments, DataArguments, strategy_arguments_class(), RunArguments, FusionArguments)
    parser = ArgumentParser((*arguments, RecipeTrainingArguments), prog=prog)
    merged: dict[str, Any] = dict(TRAINING_DEFAULTS[task] if defaults is None else defaults)
    for command in commands:
        merged.update(command.recipe_defaults(task) if hasattr(command, "recipe_defaults") else {})
    if config_path is not None:
        check_file_values(parser, from_file, config_path)
        merged.update(from_file)
    if not _has_accelerator() and "use_cpu" not in merged:
        merged["use_cpu"] = True  # makes `accelerate launch --num_processes N` run N gloo CPU processes, not N copies
    merged.update(_schedule_follows_user(argv, from_file))
    parser.set_defaults(**merged)
    *own, model, data, strategy, run, fusion, training = parse_into_dataclasses(parser, argv)
    given = {arg.split("=", 1)[0].removeprefix("--").replace("-", "_") for arg in argv if arg.startswith("--")}
    mark_user_set(training, (given | set(from_file)) & TRAINING_ARGUMENT_NAMES)
    if task != MULTIMODAL_CLASSIFICATION:
        _reject_fusion_flags(argv, task)
    return RecipeConfig(model, data, strategy, training, run, task, fusion), tuple(own)


def _schedule_follows_user(argv: list[str], from_file: dict[str, Any]) -> dict[str, Any]:
    """The recipe's evaluation schedule follows a save schedule the user set, and the reverse: keeping the best
    model needs both on one schedule, and only one of them was the user's choice."""
    given = {
        name: _peek_flag(argv, f"--{name}") for name in ("save_strategy", "save_steps", "eval_strategy", "eval_steps")
    }
    given = {name: value if value is not None else from_file.get(name) for name, value in given.items()}
    for chosen, follower in (("save", "eval"), ("eval", "save")):
        strategy = given[f"{chosen}_strategy"]
        if strategy is None or given[f"{follower}_strategy"] is not None or str(strategy) not in ("steps", "epoch"):
            continue
        follows = {f"{follower}_strategy": str(strategy)}
        if given[f"{chosen}_steps"] is not None and given[f"{follower}_steps"] is None:
            follows[f"{follower}_steps"] = given[f"{chosen}_steps"]
        return follows
    return {}


def resolve_config(config: RecipeConfig) -> RecipeConfig:
    """Fill what the user left unset, then validate; returns ``config`` (changed in place). Idempotent: a config
    resolved before and not changed since is returned as it is."""
    if config.resolved_as == _snapshot(config):
        return config
    _check_task(config.task)
    unset = _unset_fields(config)
    if config.training is None:
        config.training = default_training_arguments(config.task)
    if config.strategy.strategy is None:  # until the data is known (training.size_defaults may choose another)
        config.strategy.strategy = PROVISIONAL_STRATEGY
    if config.task != MULTIMODAL_CLASSIFICATION and config.model.model_name_or_path is None:
        config.model.model_name_or_path = DEFAULT_MODELS[config.task]
    if config.data.no_augment is None and config.task == IMAGE_CLASSIFICATION and _frozen_backbone(config):
        config.data.no_augment = True  # fixed features: encode them once instead of augmenting them every epoch
    apply_data_presets(config.data, config.task)
    if config.model.pooling is None:
        if config.task == TEXT_CLASSIFICATION:
            zero_shot = "mean" if config.data.train_samples_per_class == 0 else None  # the descriptions' embedding
            config.model.pooling = (
                _strategy_pooling(config)
                or zero_shot
                or choose_pooling(config.model.model_name_or_path, _frozen_backbone(config))
            )
        elif config.task == MULTIMODAL_CLASSIFICATION and "text" in config.fusion.modality_list():
            config.model.pooling = "mean"  # the fused text feature: the masked mean of token states
    chosen = {key: getattr(getattr(config, key[0]), key[1]) for key in unset}
    config.automatic.update({key: value for key, value in chosen.items() if value is not None})
    validate_config(config)
    config.resolved_as = _snapshot(config)
    return config


def unresolved_copy(config: RecipeConfig) -> RecipeConfig:
    """A copy with every value resolution chose put back to unset: resolving it again (with another model, strategy
    or data size, as a study's cells do) chooses afresh."""
    copy = deepcopy(config)
    for section, name in copy.automatic:
        setattr(getattr(copy, section), name, None)
    copy.automatic = {}
    copy.resolved_as = None
    return copy


def _unset_fields(config: RecipeConfig) -> list[tuple[str, str]]:
    """The model and data settings and the strategy the user left unset (None): what resolution may choose."""
    unset = [
        (section, f.name)
        for section in ("model", "data")
        for f in dataclasses.fields(getattr(config, section))
        if getattr(getattr(config, section), f.name) is None
    ]
    return unset + ([STRATEGY_KEY] if config.strategy.strategy is None else [])


def strategy_is_automatic(config: RecipeConfig) -> bool:
    """The user named no ``--strategy``: the run's is the default for its task and data size."""
    return STRATEGY_KEY in config.automatic


def _settings_the_size_may_choose(config: RecipeConfig) -> frozenset[str]:
    """With no ``--strategy``, the settings of the strategies the data size may still choose: checked once it has
    (:mod:`hf_transfer.training.size_defaults`), not refused before the data is read."""
    if not strategy_is_automatic(config):
        return frozenset()
    strategies = STRATEGIES_CHOSEN_BY_SIZE.get(config.task, ())
    return frozenset(name for strategy in strategies for name in get_strategy_class(strategy).setting_names())


def _snapshot(config: RecipeConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True, default=str)


def validate_config(config: RecipeConfig) -> None:
    """Reject invalid values and combinations before any heavy work (downloads, data scans, model builds).

    Reads only: a config that passes is exactly the one that runs."""
    _check_task(config.task)
    _validate_data(config.data, config.task)
    _validate_unlabeled(config.data, config.run, config.task)
    model = config.model
    if config.task == IMAGE_CLASSIFICATION and model.pooling is not None:
        raise ConfigError("--pooling applies to text classification, not images.")
    if (
        model.from_scratch
        and model.architecture is None
        and model.model_name_or_path
        and os.path.isfile(model.model_name_or_path)
    ):
        raise ConfigError("--from_scratch with a checkpoint file needs --architecture.")
    if config.task == MULTIMODAL_CLASSIFICATION:
        _validate_fusion(config)
    else:
        check_strategy_arguments(config.strategy, read_elsewhere=_settings_the_size_may_choose(config))
    training = config.training
    if config.data.train_samples_per_class == 0 and not strategy_is_automatic(config):
        if config.strategy.strategy != "linear_probe":
            raise ConfigError(
                f"--train_samples_per_class 0 (zero-shot) trains nothing, so --strategy {config.strategy.strategy} "
                "has nothing to do: leave --strategy unset."
            )
    if training is not None and training.load_best_model_at_end and training.eval_strategy == "no":
        raise ConfigError("--load_best_model_at_end needs --eval_strategy epoch|steps (or pass it as False).")
    if config.run.early_stopping_patience and training is not None:
        if training.eval_strategy == "no" or not training.load_best_model_at_end:
            raise ConfigError(
                "--early_stopping_patience needs --eval_strategy epoch|steps and --load_best_model_at_end."
            )


def tower_strategy_arguments(config: RecipeConfig) -> dict[str, StrategyArgumentsBase]:
    """Each used tower's strategy settings: ``--image_strategy``/``--text_strategy`` (else ``--strategy``) plus the
    shared settings (``--lora_r``, ``--freeze_blocks``, ...), each going to the towers whose strategy reads it."""
    return {tower.tower: restricted_to(config.strategy, tower.text) for tower in config.strategy_spec().towers}


def _frozen_backbone(config: RecipeConfig) -> bool:
    try:
        return config.strategy_spec().frozen_backbone
    except ConfigError:  # an invalid --strategy: validation below names it
        return False


def _strategy_pooling(config: RecipeConfig) -> str | None:
    """The pooling the strategy itself needs (contrastive: the mean-pooled sentence embedding), else None."""
    try:
        return config.strategy_spec().pooling
    except ConfigError:  # an invalid --strategy: validation below names it
        return None


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ConfigError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def _validate_data(data: DataArguments, task: str) -> None:
    if data.train_val_split is not None and not 0.0 < data.train_val_split < 1.0:
        raise ConfigError(f"--train_val_split must be in (0, 1), got {data.train_val_split}.")
    if data.train_samples_per_class is not None and data.train_samples_per_class < 0:
        raise ConfigError(
            f"--train_samples_per_class must be 0 (zero-shot) or more, got {data.train_samples_per_class}."
        )
    zero_shot = data.train_samples_per_class == 0
    if zero_shot and task != TEXT_CLASSIFICATION:
        raise ConfigError(
            "--train_samples_per_class 0 (zero-shot from the label names) needs a text encoder: it is for "
            "text-classification only (an image needs an image-text model such as CLIP, which the toolkit lacks)."
        )
    for flag in ("label_descriptions", "label_template", "label_examples"):
        if getattr(data, flag) is not None and task != TEXT_CLASSIFICATION:
            raise ConfigError(
                f"--{flag} describes each label in text for a text encoder: it is for text-classification only."
            )
    given = [f"--{flag}" for flag in ("label_descriptions", "label_template") if getattr(data, flag) is not None]
    if data.label_examples is False and given and not zero_shot:
        raise ConfigError(
            f"--label_examples false and {' '.join(given)} contradict each other: with labelled examples the "
            "descriptions are used only as examples. Drop one of them."
        )
    if data.label_template is not None and data.label_template.count("{}") != 1:
        raise ConfigError(f"--label_template needs exactly one {{}} for the description, got {data.label_template!r}.")
    for flag in ("max_train_samples", "max_eval_samples", "image_size", "max_seq_length"):
        value = getattr(data, flag)
        if value is not None and value <= 0:
            raise ConfigError(f"--{flag} must be a positive integer, got {value}.")
    if data.text_column_names is not None and not 1 <= len(data.text_column_list()) <= 2:
        raise ConfigError(
            f"--text_column_names takes one column or two (a sentence pair), got {data.text_column_names!r}."
        )
    if task == IMAGE_CLASSIFICATION:
        for flag in ("text_column_names", "max_seq_length"):
            if getattr(data, flag) is not None:
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
    for flag in ("train_dir", "validation_dir", "unlabeled_dir"):
        path = getattr(data, flag)
        if path and not os.path.isdir(path):
            raise ConfigError(f"--{flag}: directory {path!r} does not exist.")
    for flag in ("train_file", "validation_file", "unlabeled_file"):
        path = getattr(data, flag)
        if path:
            if not os.path.isfile(path):
                raise ConfigError(f"--{flag}: file {path!r} does not exist.")
            if Path(path).suffix.lower() not in (".csv", ".json", ".jsonl", ".parquet"):
                raise ConfigError(f"--{flag}: {path!r} must be .csv, .json, .jsonl or .parquet.")


UNLABELED_SOURCES = ("unlabeled_file", "unlabeled_dir", "unlabeled_dataset")


def unlabeled_sources(data: DataArguments) -> list[str]:
    """The flags that name the run's unlabelled examples (``--empty_labels unlabeled`` counts): one at most."""
    given = [f"--{name}" for name in UNLABELED_SOURCES if getattr(data, name)]
    return [*given, "--empty_labels unlabeled"] if data.empty_labels == "unlabeled" else given


def _validate_unlabeled(data: DataArguments, run: RunArguments, task: str) -> None:
    """Unlabelled data and the self-training settings: one source, for a task that can use it."""
    given = unlabeled_sources(data)
    if len(given) > 1:
        raise ConfigError(f"Give one source of unlabelled examples, not {' and '.join(given)}.")
    if data.unlabeled_dir and task != IMAGE_CLASSIFICATION:
        raise ConfigError("--unlabeled_dir is a folder of images: for text or image+text use --unlabeled_file.")
    if data.max_unlabeled_samples is not None and data.max_unlabeled_samples <= 0:
        raise ConfigError(f"--max_unlabeled_samples must be a positive integer, got {data.max_unlabeled_samples}.")
    settings = {
        "self_training_rounds": run.self_training_rounds,
        "pseudo_labels_per_class": run.pseudo_labels_per_class,
    }
    if not given:
        for flag, value in (*settings.items(), ("pseudo_label_threshold", run.pseudo_label_threshold or None)):
            if value is not None:
                raise ConfigError(
                    f"--{flag} sets up self-training, which needs unlabelled examples: add --unlabeled_file, "
                    "--unlabeled_dir or --unlabeled_dataset (or --empty_labels unlabeled)."
                )
        return
    if task == MULTIMODAL_CLASSIFICATION:
        raise ConfigError(
            f"{given[0]}: self-training is built for image and text classification; image+text is not supported yet."
        )
    if data.train_samples_per_class == 0:
        raise ConfigError(
            f"{given[0]}: self-training starts from labelled examples; a zero-shot run "
            "(--train_samples_per_class 0) cannot use unlabelled data yet."
        )
    for flag, value in settings.items():
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {value}.")
    if not 0.0 <= run.pseudo_label_threshold < 1.0:
        raise ConfigError(f"--pseudo_label_threshold is a probability in [0, 1), got {run.pseudo_label_threshold}.")


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
    spec = config.strategy_spec()
    every_setting = {f.name for f in dataclasses.fields(config.strategy)}  # unread settings: checked for all below
    for tower in spec.towers:
        if "lwf" in tower.parts:
            raise ConfigError(
                f"--{tower.tower}_strategy: lwf is not available for a fusion tower (it has no source head)."
            )
        args = dataclasses.replace(config.strategy, strategy=tower.text)
        try:
            check_strategy_arguments(args, read_elsewhere=every_setting)
        except ConfigError as err:
            raise ConfigError(f"{tower.tower} tower: {err}") from err
    given = {f.name for f in dataclasses.fields(config.strategy) if f.name != "strategy"}
    for name in sorted(given):
        if getattr(config.strategy, name) is not None and name not in spec.settings_read:
            raise ConfigError(f"--{name} does not apply to the towers' strategies ({spec}).")


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
    # Accept both flat files and files grouped by section (model:, data:, strategy:, training:), and a finished run's
    # hf_transfer_config.json (its record of what happened is not a setting): it runs the same run again.
    flat: dict[str, Any] = {}
    for key, value in loaded.items():
        if key in _RUN_RECORD_KEYS:
            continue
        if key in _SECTIONS and isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


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
