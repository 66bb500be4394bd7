"""A model cut at a block boundary into a frozen prefix (encoded once) and the rest (trained on what it encoded).

The block view says *which* parameters form the stem and each block; this module says how to *run* the network from
any block boundary, per backbone family: timm EfficientNet, ViT, ResNet and ConvNeXt, and BERT-family encoders with
their sequence-classification heads. ``depth=None`` cuts at the head's input: the pooled features a linear probe
trains on, for any timm model. Every split is checked once on a probe batch: ``rest(encode(x))`` must equal the whole
model's logits, so a family whose forward does something unexpected is refused rather than silently wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BlockView
from .pooled_text import MeanPooledClassifier, masked_mean

Tensors = dict[str, torch.Tensor]


@dataclass
class PrefixSplit:
    """``encode(inputs) -> tensors`` per example (batched), ``rest(tensors) -> logits``; ``prefix`` lists the frozen
    modules (kept in eval mode, hashed for the cache key)."""

    depth: int | None  # blocks after the stem in the prefix; None: the whole body (pooled features)
    prefix: list[nn.Module]
    encode: Callable[[Tensors], Tensors]
    rest: Callable[[Tensors], torch.Tensor]
    description: str
    # The one linear layer ``rest`` applies to ``features`` (after dropout), when that is all it does: a head that can
    # be fitted in closed form on the cached features.
    head: nn.Linear | None = None

    def check(self, model: nn.Module, probe: Tensors, atol: float = 1e-4) -> str | None:
        """Why this split does not reproduce ``model`` on ``probe`` (eval mode), or None when it does."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                whole = model(**probe).logits
                split = self.rest(self.encode(probe))
        except Exception as err:  # any failure means the same thing here: this family cannot be cut like this
            return f"{type(err).__name__}: {err}"
        finally:
            model.train(was_training)
        if whole.shape != split.shape or not torch.allclose(whole, split, atol=atol, rtol=1e-4):
            return f"the cut model's logits differ from the whole model's (max |Δ| {(whole - split).abs().max():.2e})"
        return None


def split_model(model: nn.Module, view: BlockView, depth: int | None) -> PrefixSplit | None:
    """The split of ``model`` after the stem and ``depth`` blocks (None: the pooled features), or None when this
    family cannot be cut there."""
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None:
        return _timm_split(timm_model, view, depth)
    if _text_encoder(model) is not None:
        return _text_split(model, view, depth)
    return None


# ------------------------------------------------------------------------------------------------------------- timm


def _timm_split(m: nn.Module, view: BlockView, depth: int | None) -> PrefixSplit | None:
    classifier = m.get_classifier()
    drop_rate = float(getattr(m, "drop_rate", 0.0) or 0.0)

    def head(features: torch.Tensor) -> torch.Tensor:  # what follows the pooled features in forward_head
        return classifier(F.dropout(features, p=drop_rate, training=m.training))

    if depth is None:
        body = [child for name, child in m.named_children() if child is not classifier]
        return PrefixSplit(
            None,
            body,
            lambda inputs: {"features": m.forward_head(m.forward_features(inputs["pixel_values"]), pre_logits=True)},
            lambda cached: head(cached["features"]),
            "pooled features (the head's input)",
            classifier if isinstance(classifier, nn.Linear) else None,
        )
    family = _timm_family(m)
    if family is None:
        return None
    stem, steps = family
    if depth > len(steps) or not _aligned(m, view, steps, prefix="timm_model."):
        return None
    prefix_modules = [module for step in (stem, *steps[:depth]) for _, module in step.modules]

    def encode(inputs: Tensors) -> Tensors:
        x = stem.run(inputs["pixel_values"])
        for step in steps[:depth]:
            x = step.run(x)
        return {"hidden": x}

    def rest(cached: Tensors) -> torch.Tensor:
        x = cached["hidden"]
        for step in steps[depth:]:
            x = step.run(x)
        return m.forward_head(x)

    return PrefixSplit(depth, prefix_modules, encode, rest, f"stem + {depth} blocks")


@dataclass
class _Step:
    """One block of the view as it runs: its modules (by attribute path) and how to apply them."""

    modules: list[tuple[str, nn.Module]]
    run: Callable[[torch.Tensor], torch.Tensor]

    def parameter_names(self, prefix: str) -> set[str]:
        return {f"{prefix}{path}.{name}" for path, module in self.modules for name, _ in module.named_parameters()}


def _sequence(modules: list[tuple[str, nn.Module]], run: Callable | None = None) -> _Step:
    def apply(x: torch.Tensor) -> torch.Tensor:
        for _, module in modules:
            x = module(x)
        return x

    return _Step(modules, run or apply)


def _timm_family(m: nn.Module) -> tuple[_Step, list[_Step]] | None:
    """(stem, blocks) of the timm families whose forward_features is stem → blocks → final norm."""
    kind = type(m).__name__
    if kind == "EfficientNet":
        stem = _sequence([("conv_stem", m.conv_stem), ("bn1", m.bn1)])
        blocks = [(f"blocks.{s}.{b}", block) for s, stage in enumerate(m.blocks) for b, block in enumerate(stage)]
        steps = [_sequence([item]) for item in blocks[:-1]]
        steps.append(_sequence([blocks[-1], ("conv_head", m.conv_head), ("bn2", m.bn2)]))
        return stem, steps
    if kind == "VisionTransformer":

        def vit_stem(x: torch.Tensor) -> torch.Tensor:
            return m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))

        stem_modules = [("patch_embed", m.patch_embed), ("norm_pre", m.norm_pre)]
        stem = _Step(stem_modules, vit_stem)  # cls_token / pos_embed are the stem's too (the view says so)
        steps = [_sequence([(f"blocks.{i}", block)]) for i, block in enumerate(m.blocks)]
        steps[-1] = _sequence([(f"blocks.{len(m.blocks) - 1}", m.blocks[-1]), ("norm", m.norm)])
        return stem, steps
    if kind == "ResNet":
        stem = _sequence([("conv1", m.conv1), ("bn1", m.bn1), ("act1", m.act1), ("maxpool", m.maxpool)])
        layers = [(f"layer{i}.{j}", block) for i in range(1, 5) for j, block in enumerate(getattr(m, f"layer{i}"))]
        return stem, [_sequence([item]) for item in layers]
    if kind == "ConvNeXt":
        stem = _sequence([("stem", m.stem)])
        steps = []
        for s, stage in enumerate(m.stages):
            if any(True for _ in stage.downsample.parameters()):
                steps.append(_sequence([(f"stages.{s}.downsample", stage.downsample)]))
            steps += [_sequence([(f"stages.{s}.blocks.{b}", block)]) for b, block in enumerate(stage.blocks)]
        last = steps[-1]
        steps[-1] = _sequence([*last.modules, ("norm_pre", m.norm_pre)])
        return stem, steps
    return None


def _aligned(m: nn.Module, view: BlockView, steps: list[_Step], prefix: str) -> bool:
    """The family's steps are the view's blocks (same parameters, same order): "freeze N blocks" means the same."""
    for step, names in zip(steps, view.blocks):
        if step.parameter_names(prefix) != set(names):
            return False
    return True


# ------------------------------------------------------------------------------------------------------------- text


def without_padding_columns(inputs: Tensors) -> Tensors:
    """``inputs`` cut to the batch's longest text: the columns right of it are padding in every row. A pooled output
    does not depend on them (the mean and the [CLS] state read only real tokens), but every layer computes them: the
    cache's batches are padded to ``--max_seq_length`` (128), about four times a review's length. Left-padded inputs
    (a real token in the last column) are returned as they are."""
    mask = inputs.get("attention_mask")
    if mask is None or mask.dim() != 2 or bool(mask[:, -1].any()):
        return inputs
    length = max(int(mask.sum(dim=1).max()), 1)
    if not bool(mask[:, :length].sum(dim=1).eq(mask.sum(dim=1)).all()):  # padding inside a row: not right-padded
        return inputs
    return {k: v[:, :length] if v.dim() >= 2 and v.shape[:2] == mask.shape else v for k, v in inputs.items()}


def _text_encoder(model: nn.Module) -> nn.Module | None:
    """The BERT-style encoder (``embeddings`` + ``encoder.layer``) of a sequence classifier we know how to cut."""
    if isinstance(model, MeanPooledClassifier):
        encoder = model.encoder
    elif hasattr(model, "bert") and hasattr(model, "classifier") and hasattr(model, "dropout"):
        encoder = model.bert
    else:
        return None
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    return encoder if hasattr(encoder, "embeddings") and isinstance(layers, nn.ModuleList) else None


def _text_split(model: nn.Module, view: BlockView, depth: int | None) -> PrefixSplit | None:
    from transformers.masking_utils import create_bidirectional_mask

    encoder = _text_encoder(model)
    layers = encoder.encoder.layer
    mean_pooled = isinstance(model, MeanPooledClassifier)
    cut = len(layers) if depth is None else depth
    if cut > len(layers):
        return None

    def run_layers(hidden: torch.Tensor, attention_mask: torch.Tensor, chosen) -> torch.Tensor:
        mask = create_bidirectional_mask(config=encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in chosen:
            hidden = layer(hidden, mask)
        return hidden

    def encode_hidden(inputs: Tensors) -> Tensors:
        attention_mask = inputs.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones_like(inputs["input_ids"])
        embedded = encoder.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
        return {"hidden": run_layers(embedded, attention_mask, layers[:cut]), "attention_mask": attention_mask}

    def head_from_sequence(sequence: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if mean_pooled:
            return model.classifier(model.dropout(masked_mean(sequence, attention_mask)))
        return model.classifier(model.dropout(encoder.pooler(sequence)))

    prefix_modules = [encoder.embeddings, *layers[:cut]]
    if depth is None:  # the pooled vector the head reads: the masked mean, or the [CLS] state the pooler takes

        def encode(inputs: Tensors) -> Tensors:
            hidden = encode_hidden(without_padding_columns(inputs))
            sequence, mask = hidden["hidden"], hidden["attention_mask"]
            return {"features": masked_mean(sequence, mask) if mean_pooled else sequence[:, 0]}

        def rest(cached: Tensors) -> torch.Tensor:
            features = cached["features"]
            if mean_pooled:
                return model.classifier(model.dropout(features))
            return model.classifier(model.dropout(encoder.pooler(features.unsqueeze(1))))

        linear = model.classifier if mean_pooled and isinstance(model.classifier, nn.Linear) else None
        return PrefixSplit(None, prefix_modules, encode, rest, "pooled features (the head's input)", linear)

    def rest_from_hidden(cached: Tensors) -> torch.Tensor:
        mask = cached["attention_mask"]
        return head_from_sequence(run_layers(cached["hidden"], mask, layers[cut:]), mask)

    return PrefixSplit(depth, prefix_modules, encode_hidden, rest_from_hidden, f"embeddings + {depth} layers")
