"""A sequence classifier that reads the masked mean of token states instead of the [CLS] pooler.

Why: the pooler of sentence-embedding checkpoints such as all-MiniLM-L6-v2 was never trained, so a frozen body's [CLS]
pooler output is a poor feature; the mean of token states is what those models were trained to make useful.

This module is saved next to the weights (transformers' ``auto_map`` custom-code mechanism), so it must import nothing
but torch and transformers: ``AutoModelForSequenceClassification.from_pretrained(dir, trust_remote_code=True)`` and
``pipeline("text-classification", model=dir, trust_remote_code=True)`` then load it with no hf_transfer installed.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class MeanPooledClassifierConfig(PretrainedConfig):
    model_type = "mean_pooled_text_classifier"

    def __init__(self, encoder: dict | None = None, classifier_dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder or {}
        self.classifier_dropout = classifier_dropout

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)


class MeanPooledClassifier(PreTrainedModel):
    config_class = MeanPooledClassifierConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True
    accepts_loss_kwargs = False  # the loss is a per-batch mean

    def __init__(self, config: MeanPooledClassifierConfig, encoder: PreTrainedModel | None = None):
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder_config())
        if getattr(self.encoder, "pooler", None) is not None:  # never read, never saved: loading must not report it
            self.encoder.pooler = None
        hidden = self.encoder.config.hidden_size
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(hidden, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        states, attention_mask = encode_tokens(self.encoder, input_ids, attention_mask, token_type_ids)
        logits = self.classifier(self.dropout(masked_mean(states, attention_mask)))
        loss = None
        if labels is not None:
            loss = _classification_loss(logits, labels, self.config.problem_type, self.config.num_labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def encode_tokens(
    encoder: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(token states, attention mask): the mask defaults to all ones, token types are passed only when given."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    return encoder(**inputs).last_hidden_state, attention_mask


def masked_mean(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states over the real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: str | None, num_labels: int):
    if problem_type == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
    if problem_type == "multi_label_classification":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    return nn.functional.cross_entropy(logits.view(-1, num_labels), labels.view(-1))


MeanPooledClassifierConfig.register_for_auto_class()
MeanPooledClassifier.register_for_auto_class("AutoModelForSequenceClassification")
