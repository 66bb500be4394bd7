"""The pieces a model card is made of (base model, strategies, tables, towers, ablation), as small typed values,
and the names the card's sections share."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..config import IMAGE_CLASSIFICATION, MULTI_LABEL, MULTIMODAL_CLASSIFICATION, REGRESSION, TEXT_CLASSIFICATION
from ..metric_names import MetricInfo

TRAINER_STATE_FILENAME = "trainer_state.json"  # the Trainer's: log history and the best checkpoint
EVAL_SPLIT = "validation"
# The transformers class a task's model is (timm models through TimmWrapper): what a PEFT adapter is applied to.
AUTO_CLASSES = {
    IMAGE_CLASSIFICATION: "AutoModelForImageClassification",
    TEXT_CLASSIFICATION: "AutoModelForSequenceClassification",
    MULTIMODAL_CLASSIFICATION: "AutoModelForSequenceClassification",  # once `import hf_transfer` registered it
}
# The task a tower's reference resolves as (a timm name for an image tower, a Hub id for a text tower).
TOWER_TASKS = {"image": IMAGE_CLASSIFICATION, "text": TEXT_CLASSIFICATION}
# The `library_name` of a fusion model's repo: what a user must install to load it. Its classes reach transformers'
# Auto API only through `import hf_transfer`, so `transformers` would make the Hub offer loading code that fails; and
# the PyPI name `hf_transfer` is another project (a download accelerator), so the distribution's name it is.
FUSION_LIBRARY = "hf-transfer-toolkit"
# The per-modality ablation results a multimodal run reports (`eval_image_only_accuracy`, ...): heads trained on one
# tower's features alone, not the pushed weights, so they stay out of model-index and go to their own table.
ABLATION_KEY = re.compile(r"^eval_(image|text)_only_(.+)$")
PEFT_NAMES = {"LORA": "LoRA", "IA3": "(IA)³"}
POOLING_WORDS = {"mean": "masked mean of token states", "cls": "[CLS] pooler"}
PROBLEM_WORDS = {MULTI_LABEL: "multi-label", REGRESSION: "regression"}


@dataclass(frozen=True)
class BaseModel:
    hub_id: str | None  # `base_model:` metadata: a Hub repo id or nothing
    description: str  # markdown for the body
    license: str | None

    @property
    def link(self) -> str:
        return f"[{self.hub_id}](https://huggingface.co/{self.hub_id})" if self.hub_id else "a local checkpoint"


class StrategyCard(NamedTuple):
    """A transfer strategy and its one-line summary; a tuple, so that templates unpack it (``for name, summary``)."""

    name: str
    summary: str


class TableRow(NamedTuple):
    """A row of a two-column table (preprocessing, hyperparameters): a tuple, so that templates unpack it."""

    name: str
    value: Any


class MetricRow(NamedTuple):
    """One of the pushed weights' validation metrics."""

    name: str  # as hf_transfer reports it ("macro_f1")
    metric: MetricInfo  # how the card and model-index name it
    value: float


@dataclass(frozen=True)
class TowerCard:
    """One tower of a fusion model, as the card describes it."""

    modality: str  # "image" or "text"
    base: BaseModel
    architecture: str  # markdown
    num_features: int | None
    strategy: str  # the tower's (composed) strategy, e.g. "linear_probe" or "lora+l2sp"
    strategies: list[StrategyCard] = field(default_factory=list)  # one per component
    frozen: bool = False
    cached: bool = False
    from_scratch: bool = False
    learning_rate: float | None = None


@dataclass(frozen=True)
class FusionHead:
    method: str  # "concat" or "gated"
    summary: str  # the head class's own first sentence
    hidden_size: int | None
    dropout: float | None


@dataclass(frozen=True)
class DataDescription:
    """Where the training and validation examples came from, in words."""

    source: str
    validation: str
    notes: list[str]


@dataclass(frozen=True)
class BestCheckpoint:
    """The step whose weights were kept (``load_best_model_at_end``), and its score on the selection metric."""

    step: int
    of: int | None
    metric_name: str
    metric: float | None


@dataclass(frozen=True)
class LoadingReferences:
    """What the card's loading code names: the Hub repo (at a branch, if any), or the local directory."""

    timm: str  # a timm model name: `hf-hub:...` or `local-dir:...`
    model: str  # for from_pretrained / pipeline
    revision_kwarg: str  # `, revision="..."` or nothing
    download: str  # the repo hf_hub_download reads


class AblationRow(NamedTuple):
    name: str
    values: list[float]


@dataclass(frozen=True)
class AblationGain:
    """How far the fused model beats (or trails) the better single-modality head."""

    points: float  # of accuracy, ×100
    modality: str
    accuracy: float


@dataclass(frozen=True)
class Ablation:
    """Fused vs single-modality heads on the same validation split, on the metrics all of them report."""

    columns: list[str]
    rows: list[AblationRow]
    gain: AblationGain | None
