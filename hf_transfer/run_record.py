"""What a run did, as one typed record: written by the run (``provenance`` in ``hf_transfer_config.json``), read by
the model card, the study and push. A leaf: it imports nothing of hf_transfer.

A field the writers and readers disagree on fails loudly: building a record with an unknown field is a ``TypeError``,
reading a file whose record holds a key this version does not know is a :class:`RecordError`. Fields missing from an
older run's file take their defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SECTION = "provenance"  # the record's key in hf_transfer_config.json


class RecordError(ValueError):
    """A run's recorded provenance does not match the fields this version of hf_transfer reads."""


@dataclass
class FrozenFeatures:
    """The frozen prefix the run trained on cached features of (the feature cache)."""

    prefix: str  # e.g. "stem + 7 blocks" or "frozen towers"
    dtype: str  # as stored ("float16", "float32")
    frozen_features_encoded: int = 0  # examples this run encoded
    frozen_features_reused: int = 0  # examples found in the cache from earlier runs

    def counts(self) -> dict[str, int]:
        """The counts as the run's metrics name them."""
        return {name: getattr(self, name) for name in ("frozen_features_encoded", "frozen_features_reused")}


@dataclass
class RunRecord:
    """The run's data, splits, choices and counts; one per run, filled in as the run goes."""

    base_model: str = ""  # the checkpoint reference (a fusion model: its towers', joined with " + ")
    dataset: str = ""  # where the examples came from, as the loader describes it
    train_samples: int = 0
    eval_samples: int = 0
    eval_set: str = ""  # digest of the evaluation rows: runs scored on the same examples share it
    problem_type: str = ""
    label_names: list[str] | None = None
    strategy: str = ""  # the parsed strategy as text (:class:`~hf_transfer.strategies.StrategySpec`)
    from_scratch: bool = False
    no_validation: str | None = None  # why no validation split was held out (the small-data protocol)
    validation_split: str | None = None  # the source's own split used for validation, if any
    skipped_images: dict[str, int] = field(default_factory=dict)  # split -> unreadable images skipped
    data_config: dict[str, Any] | None = None  # the image preprocessing (timm data config)
    checkpoint_load: str | None = None  # how much of a bare checkpoint file loaded
    text_columns: list[str] = field(default_factory=list)
    pooling: str | None = None
    max_seq_length: int | None = None
    image_model: str | None = None  # fusion runs: each tower's reference
    text_model: str | None = None
    modalities: list[str] | None = None
    fusion: str | None = None
    cached_features: list[str] | None = None  # fusion runs: the towers whose features were cached
    frozen_features: FrozenFeatures | None = None
    class_balance: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> examples
    chosen_automatically: dict[str, Any] = field(default_factory=dict)  # training setting -> the value chosen
    chosen_automatically_line: str = ""  # the same, with the reasons, as the log line says it
    strategy_chosen: str | None = None  # the strategy and why, when the user named none
    body_phase: str | None = None  # what a phase before the features were encoded did to the body (contrastive)
    head_fit: str | None = None  # how a closed-form head was fitted (no SGD steps), in words
    label_anchors: str | None = None  # the label descriptions trained on as examples (few-shot text), in words
    unlabeled_source: str | None = None  # where the unlabelled examples came from (self-training)
    self_training: dict[str, Any] | None = None  # settings, rounds kept and why, and each round's counts per class
    wall_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, recorded: dict[str, Any] | None) -> RunRecord:
        """The record of a run's file; unknown keys are a :class:`RecordError` (the writer and this reader drifted)."""
        recorded = dict(recorded or {})
        unknown = sorted(set(recorded) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise RecordError(
                f"The run's {SECTION} holds field(s) {unknown} this version of hf_transfer does not know: was it "
                "written by a newer version?"
            )
        features = recorded.get("frozen_features")
        if isinstance(features, dict):
            recorded["frozen_features"] = FrozenFeatures(**features)
        return cls(**recorded)

    @classmethod
    def of_run_config(cls, run_config: dict[str, Any]) -> RunRecord:
        """The record inside a parsed ``hf_transfer_config.json``."""
        return cls.from_dict(run_config.get(SECTION))
