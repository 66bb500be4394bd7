"""BERT-family encoders with a new sequence-classification head, and their block view.

With ``--pooling cls`` the model is the checkpoint's own ``AutoModelForSequenceClassification`` class (a plain
transformers model); with ``--pooling mean`` it is :class:`MeanPooledClassifier` around the same encoder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..config import DEFAULT_TEXT_MODEL, ModelArguments
from ..exceptions import ConfigError
from .blocks import BlockView
from .builtin import BUILTIN_PREFIX, BUILTIN_TEXT_MODELS, builtin_checkpoint_dir, list_builtin_models
from .pooled_text import MeanPooledClassifier, MeanPooledClassifierConfig

logger = logging.getLogger(__name__)

# Checkpoints whose [CLS] pooler was never trained: mean pooling is the right default for them.
_MEAN_POOLING_DEFAULT = {"builtin:all-MiniLM-L6-v2"}


@dataclass
class TextModelSource:
    path: str  # a local folder or a Hub id, as transformers' from_pretrained takes it
    reference: str  # what the user asked for (recorded as the base model)


def resolve_text_source(args: ModelArguments) -> TextModelSource:
    name = args.model_name_or_path or DEFAULT_TEXT_MODEL
    if name.startswith(BUILTIN_PREFIX):
        if name.removeprefix(BUILTIN_PREFIX) not in BUILTIN_TEXT_MODELS:
            available = ", ".join(list_builtin_models("text-classification"))
            raise ConfigError(f"--model_name_or_path: no built-in text checkpoint {name!r}; available: {available}.")
        return TextModelSource(path=str(builtin_checkpoint_dir(name)), reference=name)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise ConfigError(f"--model_name_or_path: directory {name!r} has no config.json (transformers format).")
        return TextModelSource(path=os.path.abspath(name), reference=os.path.abspath(name))
    if name.startswith((".", "/")) or os.path.isfile(name):
        raise ConfigError(f"--model_name_or_path: {name!r} is not a transformers model directory.")
    return TextModelSource(path=name, reference=name)  # a Hub id, e.g. 'bert-base-uncased' or 'org/name'


# Strategies that keep the whole encoder frozen: the head can only use what the checkpoint already puts in its states.
_FROZEN_BODY_STRATEGIES = {"linear_probe"}


def choose_pooling(args: ModelArguments, strategy: str) -> str:
    """``--pooling`` if given; else mean pooling for a frozen sentence-embedding encoder, [CLS] otherwise.

    A sentence-embedding checkpoint (all-MiniLM-L6-v2) was trained to make the *mean* of its token states useful, not
    its [CLS] state or pooler; once the encoder itself trains, [CLS] adapts and the output stays a native model.
    """
    if args.pooling:
        return args.pooling
    name = args.model_name_or_path or DEFAULT_TEXT_MODEL
    return "mean" if name in _MEAN_POOLING_DEFAULT and strategy in _FROZEN_BODY_STRATEGIES else "cls"


def load_tokenizer(source: TextModelSource, args: ModelArguments) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(source.path, revision=args.model_revision, cache_dir=args.cache_dir)


def build_text_model(
    args: ModelArguments,
    source: TextModelSource,
    label_names: list[str] | None,
    problem_type: str,
) -> tuple[PreTrainedModel, BlockView]:
    """Pretrained (or random-init) encoder + a new head: ``len(label_names)`` outputs, or 1 for regression."""
    num_labels = 1 if problem_type == "regression" else len(label_names or [])
    labels = {}
    if label_names:
        labels = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
    hub = {"revision": args.model_revision, "cache_dir": args.cache_dir}
    encoder_config = AutoConfig.from_pretrained(source.path, **hub)
    if (args.pooling or "cls") == "cls":
        config = AutoConfig.from_pretrained(
            source.path, num_labels=num_labels, problem_type=problem_type, **labels, **hub
        )
        if args.from_scratch:
            model = AutoModelForSequenceClassification.from_config(config)
        else:
            # ignore_mismatched_sizes: a checkpoint that already has a head of another size gets a fresh one
            model = AutoModelForSequenceClassification.from_pretrained(
                source.path, config=config, ignore_mismatched_sizes=True, **hub
            )
    else:
        config = MeanPooledClassifierConfig(
            encoder=encoder_config.to_dict(), num_labels=num_labels, problem_type=problem_type, **labels
        )
        if args.from_scratch:
            encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        else:
            encoder = AutoModel.from_pretrained(source.path, add_pooling_layer=False, **hub)
        model = MeanPooledClassifier(config, encoder=encoder)
    model.config.base_model_reference = source.reference  # provenance, kept in the saved config
    return model, text_block_view(model)


_LAYER_PATHS = ("encoder.layer", "encoder.layers", "transformer.layer", "layers", "layer")


def text_block_view(model: PreTrainedModel) -> BlockView:
    """Embeddings (stem), the encoder layers in order (blocks), everything after them (pooler + classifier: head)."""
    base = model.base_model
    prefix = model.base_model_prefix + "." if base is not model else ""
    embeddings = getattr(base, "embeddings", None)
    layers, layers_path = None, ""
    for path in _LAYER_PATHS:
        candidate = base
        for attr in path.split("."):
            candidate = getattr(candidate, attr, None)
        if isinstance(candidate, nn.ModuleList):
            layers, layers_path = candidate, path
            break
    if embeddings is None or layers is None:
        raise NotImplementedError(
            f"No block view for {type(model).__name__}: its encoder lacks `embeddings` or one of {_LAYER_PATHS}."
        )
    stem = [f"{prefix}embeddings.{n}" for n, _ in embeddings.named_parameters()]
    blocks = [
        [f"{prefix}{layers_path}.{i}.{n}" for n, _ in layer.named_parameters()] for i, layer in enumerate(layers)
    ]
    body = set(stem) | {n for block in blocks for n in block}
    head = [n for n, _ in model.named_parameters() if n not in body]
    view = BlockView(
        model=model,
        stem=stem,
        blocks=blocks,
        head=head,
        block_names=[f"{prefix}{layers_path}.{i}" for i in range(len(layers))],
    )
    view.check_complete()
    return view
