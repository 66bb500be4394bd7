"""Text classification: a BERT-family encoder with a new head; single-label, multi-label or regression."""

from __future__ import annotations

import copy
import hashlib
import json

from datasets import concatenate_datasets
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, DataCollatorWithPadding, TrainingArguments

from ...config import ModelArguments
from ...data.labels import ROW_COLUMN
from ...data.text import load_text_data, tokenize_text_dataset
from ...data.unlabeled import TRUE_LABEL, UNLABELED
from ...exceptions import ConfigError
from ...models.references import TextModelSource, resolve_text_source
from ...models.text import build_text_model, load_tokenizer, set_max_seq_length
from ...recipe import RecipeConfig
from ...strategies.base import SourceModel
from ..run_types import FeatureInputs, PreparedTask, record_of_data
from ..size_defaults import closed_form_default_up_to, with_strategy_for_data
from ..task_metrics import metrics_for


def prepare_text_task(config: RecipeConfig, training: TrainingArguments) -> PreparedTask:
    source = resolve_text_source(config.model)
    tokenizer = load_tokenizer(source, config.model)
    max_length = set_max_seq_length(tokenizer, config.data.max_seq_length)
    with training.main_process_first(desc="loading and tokenising the dataset"):
        seed = training.data_seed or training.seed
        data = load_text_data(config.data, seed, chooses_nothing_up_to=closed_form_default_up_to(config))
        config = with_strategy_for_data(config, data)  # a data-size default may need another pooling
        train = tokenize_text_dataset(data.train, tokenizer, data, max_length, "tokenising train")
        validation = tokenize_text_dataset(data.validation, tokenizer, data, max_length, "tokenising validation")
        tokenized = {"train": train, "validation": validation}
        if data.unlabeled is not None:  # their labels: what the source carried (-1: none), for reporting only
            tokenized[UNLABELED] = tokenize_text_dataset(
                data.unlabeled, tokenizer, data, max_length, "tokenising unlabelled", label_column=TRUE_LABEL
            )
    model, view = build_text_model(config.model, source, data.label_names, data.problem_type)
    labels = {name: list(tokenized[name]["labels"]) for name in ("train", "validation")}
    fixed_length = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)

    def model_inputs(name: str, positions: list[int]) -> dict:
        rows = tokenized[name].select(positions).remove_columns([ROW_COLUMN, "labels"])
        return fixed_length(list(rows))

    unlabeled, with_pseudo_labels = None, None
    if data.unlabeled is not None:
        unlabeled = tokenized[UNLABELED].remove_columns([ROW_COLUMN, "labels"])

        def with_pseudo_labels(indices: list[int], labels: list[int]):
            pseudo = (
                unlabeled.select(indices).add_column("labels", labels).cast(train.remove_columns(ROW_COLUMN).features)
            )
            return concatenate_datasets([train.remove_columns(ROW_COLUMN), pseudo])

    return PreparedTask(
        unlabeled_dataset=unlabeled,
        with_pseudo_labels=with_pseudo_labels,
        config=config,
        model=model,
        view=view,
        train_dataset=train.remove_columns(ROW_COLUMN),
        eval_dataset=validation.remove_columns(ROW_COLUMN),
        data_collator=DataCollatorWithPadding(tokenizer),
        metrics=metrics_for(data.problem_type, len(data.label_names or [])),
        label_names=data.label_names,
        problem_type=data.problem_type,
        save=lambda trained, out: trained.save_pretrained(out),
        processing_class=tokenizer,
        base_model_reference=source.reference,
        source_model_factory=lambda: text_source_model(source, config.model),
        record=record_of_data(data, source.reference, pooling=config.model.pooling, max_seq_length=max_length),
        labels=labels,
        feature_inputs=FeatureInputs(
            row_ids={name: list(split[ROW_COLUMN]) for name, split in tokenized.items()},
            labels={name: list(split["labels"]) for name, split in tokenized.items()},
            model_inputs=model_inputs,
            row_sources=data.row_sources,
            preprocessing={
                "tokenizer": tokenizer_fingerprint(tokenizer),
                "text_columns": data.text_columns,
                "max_seq_length": max_length,
            },
            augmented=False,
            lengths=lambda name: [len(ids) for ids in tokenized[name]["input_ids"]],
        ),
    )


def tokenizer_fingerprint(tokenizer) -> str:
    """What the tokenizer does, by content (its serialised vocabulary and rules), not by where it was loaded from."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return hashlib.sha256(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode()).hexdigest()
    rules = json.loads(backend.to_str())
    for state in ("truncation", "padding"):  # set by the last call, not part of what the tokenizer is
        rules.pop(state, None)
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()


def text_source_model(source: TextModelSource, args: ModelArguments) -> SourceModel:
    """The checkpoint with its own sequence-classification head: LwF's teacher (refused when it has none)."""
    config = AutoConfig.from_pretrained(source.path)
    architectures = config.architectures or []
    if args.from_scratch or not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(
            f"--strategy lwf needs a checkpoint with a source-task classification head to preserve; "
            f"{source.reference!r} has none (architectures: {architectures})."
        )
    original = AutoModelForSequenceClassification.from_pretrained(source.path)

    def forward(model: nn.Module, inputs: dict):
        return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits

    return SourceModel(model=original, head=copy.deepcopy(original.classifier), forward=forward)
