"""BERT-family encoders with a new sequence-classification head, and their block view.

With ``--pooling cls`` the model is the checkpoint's own ``AutoModelForSequenceClassification`` class (a plain
transformers model); with ``--pooling mean`` it is :class:`MeanPooledClassifier` around the same encoder.
"""

from __future__ import annotations

import logging

from huggingface_hub import constants
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..config import DEFAULT_TEXT_MODEL, TEXT_CLASSIFICATION, ModelArguments
from ..exceptions import ConfigError
from .blocks import BlockView
from .builtin import list_builtin_models
from .pooled_text import MeanPooledClassifier, MeanPooledClassifierConfig
from .references import TextModelSource

logger = logging.getLogger(__name__)

# Checkpoints whose [CLS] pooler was never trained: mean pooling is the right default for them.
_MEAN_POOLING_DEFAULT = {"builtin:all-MiniLM-L6-v2"}


def choose_pooling(model_name_or_path: str | None, frozen_body: bool) -> str:
    """The default ``--pooling``: mean pooling for a frozen sentence-embedding encoder, [CLS] otherwise.

    A sentence-embedding checkpoint (all-MiniLM-L6-v2) was trained to make the *mean* of its token states useful, not
    its [CLS] state or pooler; once the encoder itself trains, [CLS] adapts and the output stays a native model.
    """
    name = model_name_or_path or DEFAULT_TEXT_MODEL
    return "mean" if name in _MEAN_POOLING_DEFAULT and frozen_body else "cls"


DEFAULT_MAX_SEQ_LENGTH = 128  # tokens, when --max_seq_length is unset (and the model takes that many)


def set_max_seq_length(tokenizer: PreTrainedTokenizerBase, requested: int | None, what: str = "this model") -> int:
    """The length texts are cut to: ``--max_seq_length`` or the default, never more than the model takes. Written
    into the tokenizer, which is saved with the model, so that ``truncation=True`` cuts where training did."""
    length = requested or min(DEFAULT_MAX_SEQ_LENGTH, tokenizer.model_max_length)
    if length > tokenizer.model_max_length:
        raise ConfigError(
            f"--max_seq_length {length} exceeds {what}'s maximum of {tokenizer.model_max_length} tokens."
        )
    tokenizer.model_max_length = length
    return length


def load_tokenizer(source: TextModelSource, args: ModelArguments) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer; a reference that cannot be loaded (a misspelt Hub id, no network) is one line."""
    try:
        return AutoTokenizer.from_pretrained(source.path, revision=args.model_revision, cache_dir=args.cache_dir)
    except (OSError, ValueError):
        builtins = ", ".join(list_builtin_models(TEXT_CLASSIFICATION))
        offline = " (HF_HUB_OFFLINE is set)" if constants.HF_HUB_OFFLINE else ""
        raise ConfigError(
            f"--model_name_or_path: cannot load {source.reference!r}: not a local transformers directory, and not "
            f"reachable on the Hub{offline}. Check the name, or use a local directory or a built-in: {builtins}."
        ) from None


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
            model = load_pretrained_quietly(
                AutoModelForSequenceClassification, source, args, config=config, ignore_mismatched_sizes=True, **hub
            )
    else:
        config = MeanPooledClassifierConfig(
            encoder=encoder_config.to_dict(), num_labels=num_labels, problem_type=problem_type, **labels
        )
        if args.from_scratch:
            encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
        else:
            encoder = load_pretrained_quietly(AutoModel, source, args, add_pooling_layer=False, **hub)
        model = MeanPooledClassifier(config, encoder=encoder)
    model.config.base_model_reference = source.reference  # provenance, kept in the saved config
    return model, text_block_view(model)


# Weights a new head is allowed to lack (or the checkpoint to carry unused): a task head, the [CLS] pooler.
_HEAD_WEIGHTS = ("classifier.", "pooler.", "score.", "pre_classifier.")


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def load_pretrained_quietly(auto_class, source: TextModelSource, args: ModelArguments, **kwargs) -> PreTrainedModel:
    """``from_pretrained`` with transformers' multi-line LOAD REPORT for the expected head swap folded into one log
    line; a checkpoint missing encoder weights is refused (``--allow_partial_checkpoint`` lets it train anyway).

    The report is filtered, not the logger's level raised: transformers 5 checks a tensor-parallel plan whenever that
    level is WARNING or above, and says on another logger that every layer of a model with no plan "was not sharded"
    (a line of 20 parameter names in every text run)."""
    reporter = logging.getLogger("transformers.modeling_utils")
    reporter.addFilter(_errors_only)
    try:
        model, info = auto_class.from_pretrained(source.path, output_loading_info=True, **kwargs)
    finally:
        reporter.removeFilter(_errors_only)
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(_HEAD_WEIGHTS)]
    if missing and not args.allow_partial_checkpoint:
        raise ConfigError(
            f"--model_name_or_path {source.reference!r} does not fit {type(model).__name__}: {len(missing)} encoder "
            f"weights missing (e.g. {', '.join(sorted(missing)[:3])}). Use a checkpoint of this architecture, or "
            "--allow_partial_checkpoint to train with them randomly initialised."
        )
    new = sorted({k.rsplit(".", 1)[0] for k in [*info.get("missing_keys", []), *info.get("mismatched_keys", [])]})
    unused = sorted({k.rsplit(".", 1)[0] for k in info.get("unexpected_keys", [])})
    logger.info(
        "Loaded %s: %s%s.",
        source.reference,
        f"new {', '.join(new)}" if new else "every weight from the checkpoint",
        f"; unused from the checkpoint: {', '.join(unused)}" if unused else "",
    )
    return model


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
