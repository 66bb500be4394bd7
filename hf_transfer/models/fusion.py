"""Image+text classification: a timm image tower and a BERT-family text tower joined by a fusion head.

One transformers ``PreTrainedModel`` with its own config, so the Trainer, ``accelerate`` and ``save_pretrained`` /
``from_pretrained`` treat it like any other model. The config records each tower *by reference* (where its pretrained
weights came from) and by *structure* (the timm architecture and arguments, the text encoder's config), so a saved
model rebuilds both towers offline from its own ``config.json`` and loads every weight from one safetensors file.

Loading a saved model needs hf_transfer installed (``import hf_transfer`` registers the classes with the Auto API).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from ..config import FUSION_METHODS, FUSION_MODEL_TYPE, MODALITIES, SINGLE_LABEL, FusionArguments, ModelArguments
from .blocks import BlockView, is_frozen, timm_block_view
from .pooled_text import encode_tokens, masked_mean
from .references import ModelSource, TextModelSource
from .text import text_block_view
from .vision import clean_pretrained_cfg, create_timm_model


class FusionConfig(PretrainedConfig):
    """``image_tower``/``text_tower`` hold what rebuilds each tower (empty when the model does without that modality).

    image_tower: ``architecture``, ``model_args``, ``pretrained_cfg``, ``num_features``, ``reference``,
    ``data_config`` (the preprocessing the tower expects). text_tower: ``config`` (the encoder's config dict),
    ``num_features``, ``reference``.
    """

    model_type = FUSION_MODEL_TYPE

    def __init__(
        self,
        image_tower: dict[str, Any] | None = None,
        text_tower: dict[str, Any] | None = None,
        fusion: str = "concat",
        fusion_hidden_size: int = 512,
        fusion_dropout: float = 0.1,
        text_pooling: str = "mean",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.image_tower = image_tower or {}
        self.text_tower = text_tower or {}
        self.fusion = fusion
        self.fusion_hidden_size = fusion_hidden_size
        self.fusion_dropout = fusion_dropout
        self.text_pooling = text_pooling

    @property
    def modalities(self) -> list[str]:
        return [name for name in MODALITIES if getattr(self, f"{name}_tower")]

    def text_encoder_config(self) -> PretrainedConfig:
        values = dict(self.text_tower["config"])
        return AutoConfig.for_model(values.pop("model_type"), **values)


class ConcatFusion(nn.Module):
    """Layer-normalise each modality's features (their scales differ by orders of magnitude), concatenate, MLP."""

    def __init__(self, dims: list[int], hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in dims)
        self.mlp = _mlp(sum(dims), hidden, num_labels, dropout)

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([norm(f) for norm, f in zip(self.norms, features)], dim=-1))


class GatedFusion(nn.Module):
    """Text-conditioned gates on the image features (gated attention, Chaplot et al., 2018), then an MLP.

    A question selects *which* visual features matter ("what colour..." vs "is there a circle..."): a multiplicative
    interaction that concatenation must otherwise learn through its hidden layer.
    """

    def __init__(self, dims: list[int], hidden: int, num_labels: int, dropout: float):
        super().__init__()
        image_dim, text_dim = dims
        self.image_norm, self.text_norm = nn.LayerNorm(image_dim), nn.LayerNorm(text_dim)
        self.image_proj = nn.Linear(image_dim, hidden)
        self.text_proj = nn.Linear(text_dim, hidden)
        self.gate = nn.Linear(text_dim, hidden)
        self.mlp = _mlp(2 * hidden, hidden, num_labels, dropout)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        image, text = self.image_norm(image), self.text_norm(text)
        gated = nn.functional.gelu(self.image_proj(image)) * torch.sigmoid(self.gate(text))
        return self.mlp(torch.cat([gated, nn.functional.gelu(self.text_proj(text))], dim=-1))


def _mlp(in_dim: int, hidden: int, num_labels: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_labels))


class FusionForClassification(PreTrainedModel):
    """``pixel_values`` + ``input_ids`` (or precomputed ``image_embeds`` / ``text_embeds``) → class logits.

    Precomputed embeddings let a run with frozen towers encode each distinct image and text once instead of every
    epoch (see :mod:`hf_transfer.training.fusion_cache`); the towers stay in the model so it is complete when saved.
    """

    config_class = FusionConfig
    base_model_prefix = "fusion"
    main_input_name = "pixel_values"
    accepts_loss_kwargs = False  # the loss is a per-batch mean
    _no_split_modules: list[str] = []

    def __init__(
        self,
        config: FusionConfig,
        image_tower: nn.Module | None = None,
        text_tower: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        if not config.modalities:
            raise ValueError("FusionConfig needs an image tower, a text tower or both.")
        if config.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion {config.fusion!r} is not one of {FUSION_METHODS}.")
        if config.fusion == "gated" and len(config.modalities) != 2:
            raise ValueError("gated fusion needs both an image and a text tower.")
        self.image_tower = self.text_tower = None
        if config.image_tower:
            self.image_tower = image_tower if image_tower is not None else build_image_tower(config.image_tower)
        if config.text_tower:
            self.text_tower = text_tower if text_tower is not None else build_text_tower(config.text_encoder_config())
        dims = [int(getattr(config, f"{m}_tower")["num_features"]) for m in config.modalities]
        head = GatedFusion if config.fusion == "gated" else ConcatFusion
        self.fusion_head = head(dims, config.fusion_hidden_size, config.num_labels, config.fusion_dropout)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Initialise the fusion head only: the towers hold pretrained weights (or load them right after)."""
        if not any(module is m for m in self.fusion_head.modules()):
            return
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> FusionForClassification:
        """A fully frozen tower stays in eval mode (no dropout, fixed batch-norm statistics) while the rest trains:
        it is then a fixed function of its input, exactly what a feature cache of it returns.

        ``nn.Module.train``, not the tower's own ``eval()``: a transformers tower's ``train``/``eval`` switch its hub
        kernels' mode, and the Trainer calls ``train()`` every step, so each step re-kernelised the text tower twice:
        0.83x the training time of a cached easy-vqa head without it (320 steps, side by side, 7 Dec)."""
        super().train(mode)
        for tower in (self.image_tower, self.text_tower):
            if is_frozen(tower):
                nn.Module.train(tower, False)
        return self

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.image_tower(pixel_values)  # built with num_classes=0: the pooled pre-logits features

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        states, attention_mask = encode_tokens(self.text_tower, input_ids, attention_mask, token_type_ids)
        return states[:, 0] if self.config.text_pooling == "cls" else masked_mean(states, attention_mask)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        image_embeds: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        features = []
        if "image" in self.config.modalities:
            if image_embeds is None:
                if pixel_values is None:
                    raise ValueError("This model has an image tower: pass pixel_values (or image_embeds).")
                image_embeds = self.encode_image(pixel_values)
            features.append(image_embeds)
        if "text" in self.config.modalities:
            if text_embeds is None:
                if input_ids is None:
                    raise ValueError("This model has a text tower: pass input_ids (or text_embeds).")
                text_embeds = self.encode_text(input_ids, attention_mask, token_type_ids)
            features.append(text_embeds)
        sizes = [f.shape[0] for f in features]
        if len(set(sizes)) > 1:
            raise ValueError(
                f"Mismatched batch: {sizes[0]} images but {sizes[1]} texts; each example needs one of each."
            )
        logits = self.fusion_head(*features)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def build_fusion_model(
    fusion: FusionArguments,
    model_args: ModelArguments,
    label_names: list[str],
    image_source: ModelSource | None,
    text_source: TextModelSource | None,
) -> FusionForClassification:
    """Pretrained towers (random ones with ``--image_from_scratch`` / ``--text_from_scratch``) + a new fusion head."""
    image_tower = text_tower = None
    image_spec: dict[str, Any] = {}
    text_spec: dict[str, Any] = {}
    if image_source is not None:
        model_kwargs = {"drop_rate": model_args.drop_rate, "drop_path_rate": model_args.drop_path_rate}
        model_kwargs = {k: v for k, v in model_kwargs.items() if v is not None}
        scratch = fusion.image_from_scratch or model_args.from_scratch
        image_tower = create_timm_model(
            image_source, num_classes=0, pretrained=not scratch, cache_dir=model_args.cache_dir, **model_kwargs
        )
        image_spec = {
            "architecture": image_tower.pretrained_cfg.get("architecture") or type(image_tower).__name__,
            "model_args": model_kwargs,
            "pretrained_cfg": clean_pretrained_cfg(image_tower.pretrained_cfg),
            "num_features": int(image_tower.num_features),
            "reference": image_source.reference,
            "from_scratch": scratch,
        }
    if text_source is not None:
        hub = {"revision": model_args.model_revision, "cache_dir": model_args.cache_dir}
        encoder_config = AutoConfig.from_pretrained(text_source.path, **hub)
        scratch = fusion.text_from_scratch or model_args.from_scratch
        text_tower = build_text_tower(encoder_config, None if scratch else text_source.path, **hub)
        encoder = {k: v for k, v in text_tower.config.to_dict().items() if k != "_name_or_path"}  # no local paths
        text_spec = {
            "config": encoder,
            "num_features": int(text_tower.config.hidden_size),
            "reference": text_source.reference,
            "from_scratch": scratch,
        }
    fusion_config = FusionConfig(
        image_tower=image_spec,
        text_tower=text_spec,
        fusion=fusion.fusion,
        fusion_hidden_size=fusion.fusion_hidden_size,
        fusion_dropout=fusion.fusion_dropout,
        text_pooling=model_args.pooling or "mean",
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        problem_type=SINGLE_LABEL,
    )
    return FusionForClassification(fusion_config, image_tower=image_tower, text_tower=text_tower)


def tower_block_view(name: str, tower: nn.Module) -> BlockView:
    """A tower's own block view; its head is empty (the fusion head is not part of either tower)."""
    view = timm_block_view(tower, tower) if name == "image" else text_block_view(tower)
    view.check_complete()
    return view


def fusion_block_view(model: FusionForClassification) -> BlockView:
    """The whole model as the Trainer sees it: the towers as two blocks, the fusion head as the head."""
    names = [n for n, _ in model.named_parameters()]
    blocks = [[n for n in names if n.startswith(f"{m}_tower.")] for m in model.config.modalities]
    view = BlockView(
        model=model,
        stem=[],
        blocks=blocks,
        head=[n for n in names if n.startswith("fusion_head.")],
        block_names=[f"{m}_tower" for m in model.config.modalities],
    )
    view.check_complete()
    return view


def build_image_tower(spec: dict[str, Any]) -> nn.Module:
    """The timm model a saved config describes, without classifier (``num_classes=0``: it returns pooled features);
    its weights come from the fusion model's safetensors file."""
    import timm

    return timm.create_model(
        spec["architecture"],
        pretrained=False,
        num_classes=0,
        pretrained_cfg=spec.get("pretrained_cfg"),
        **spec.get("model_args", {}),
    )


def build_text_tower(config: PretrainedConfig, pretrained_path: str | None = None, **hub: Any) -> PreTrainedModel:
    """The bare encoder (``AutoModel``), without the [CLS] pooler: the fusion head reads token states, and an unused
    pooler would be a parameter without gradient (an error under DDP)."""
    if pretrained_path is not None:
        encoder = AutoModel.from_pretrained(pretrained_path, config=config, **hub)
    else:
        encoder = AutoModel.from_config(config)
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


AutoConfig.register(FusionConfig.model_type, FusionConfig)
AutoModelForSequenceClassification.register(FusionConfig, FusionForClassification)
