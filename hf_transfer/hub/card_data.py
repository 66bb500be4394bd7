"""What a model card shows, read from a finished run's files into one typed record, :class:`TransferCardData`.

As SetFit's ``SetFitModelCardData``: huggingface_hub's :class:`~huggingface_hub.ModelCardData` as a dataclass, built in
one place (:meth:`TransferCardData.from_run`) from what the run wrote (``hf_transfer_config.json``, the Trainer's
results and log history, the saved config), so the card describes the pushed weights and nothing else, and a missing
or misspelt field fails when the card is built, not when a template reads it. Its metadata fields become the card's
YAML block (model-index included); the body's fields (``repr=False``) never do. Hub metadata only ever names Hub
repos: local paths and ``builtin:`` names are described in the body instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from ..config import MODALITIES, MULTIMODAL_CLASSIFICATION, REGRESSION, SINGLE_LABEL
from ..exceptions import ConfigError
from ..strategies import StrategySpec, TowerSpec, get_strategy_class
from .artifacts import CONFUSION_FILENAME, CURVES_FILENAME, RunArtifacts, RunKind
from .card_sections import (
    ablation_table,
    accuracy_margin,
    architecture_markdown,
    base_hub_ids,
    best_checkpoint,
    card_tags,
    column_name,
    describe_base_model,
    describe_data,
    example_text,
    first_sentence,
    fusion_base,
    fusion_head,
    hub_dataset_id,
    hyperparameter_rows,
    image_data_config,
    loading_references,
    metric_rows,
    model_index_results,
    preprocessing_rows,
    read_optional_json,
    run_base,
    task_words,
    tower_architecture,
    training_notes,
    with_declared_license,
)
from .card_study import StudyChoice
from .card_types import (
    AUTO_CLASSES,
    EVAL_SPLIT,
    FUSION_LIBRARY,
    TOWER_TASKS,
    TRAINER_STATE_FILENAME,
    Ablation,
    BaseModel,
    BestCheckpoint,
    DataDescription,
    FusionHead,
    LoadingReferences,
    MetricRow,
    StrategyCard,
    TableRow,
    TowerCard,
)

__all__ = [
    "TRAINER_STATE_FILENAME",
    "TransferCardData",
    "describe_base_model",
    "read_optional_json",
    "strategy_summary",
]


BODY_PHASE_NOTE = "; in the head's fit, after a contrastive phase that trained the body"


@dataclass
class TransferCardData(ModelCardData):
    """Everything a run's model card shows: the Hub metadata, then (``repr=False``) the body the templates render."""

    # Hub metadata, in the order ModelCardData writes it; `eval_results` and `model_name` become model-index.
    base_model: str | list[str] | None
    datasets: list[str] | None
    eval_results: list[EvalResult] | None
    library_name: str
    license: str | None
    metrics: list[str] | None
    model_name: str
    pipeline_tag: str | None
    tags: list[str]
    base_model_relation: str | None  # "finetune" for several base models: the Hub would read a weight merge
    # The body.
    kind: RunKind = field(repr=False)
    problem_type: str = field(repr=False)
    custom_code: bool = field(repr=False)
    closed_form_head: bool = field(repr=False)  # the head was fitted in one solve, not trained by the Trainer
    architecture: str = field(repr=False)  # markdown
    base: BaseModel = field(repr=False)
    from_scratch: bool = field(repr=False)
    strategies: list[StrategyCard] = field(repr=False)
    strategy_settings: dict[str, Any] = field(repr=False)
    trainable_parameters: int | None = field(repr=False)
    total_parameters: int | None = field(repr=False)
    trainable_share: float | None = field(repr=False)
    trainable_note: str = field(repr=False)  # what the count leaves out (a body phase before the head's fit)
    label_names: list[str] = field(repr=False)
    data: DataDescription = field(repr=False)
    train_samples: int | None = field(repr=False)
    eval_samples: int | None = field(repr=False)
    eval_split: str = field(repr=False)
    preprocessing: list[TableRow] = field(repr=False)
    hyperparameters: list[TableRow] = field(repr=False)
    training_notes: list[str] = field(repr=False)  # how it was trained beyond the table (cached features, ...)
    study: StudyChoice | None = field(repr=False)  # the transfer study this run is a cell of
    results: list[MetricRow] = field(repr=False)
    eval_loss: float | None = field(repr=False)
    best: BestCheckpoint | None = field(repr=False)
    curves_file: str | None = field(repr=False)
    confusion_file: str | None = field(repr=False)
    max_seq_length: int | None = field(repr=False)
    pooling: str | None = field(repr=False)
    task_words: str = field(repr=False)
    noun: str = field(repr=False)
    auto_class: str = field(repr=False)
    accuracy_margin: float | None = field(repr=False)
    load: LoadingReferences = field(repr=False)
    image_column: str = field(repr=False)
    label_column: str = field(repr=False)
    text_columns: list[str] = field(repr=False)
    image_mode: str = field(repr=False)  # the PIL mode the image input is converted to
    example_text: str = field(repr=False)  # for the loading code
    ablation: Ablation | None = field(repr=False)
    towers: list[TowerCard] = field(repr=False)  # a fusion model's; empty for the others
    fusion: FusionHead | None = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The Hub metadata (model-index included) and nothing of the body, which ``to_yaml`` would dump too."""
        metadata = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        self._to_dict(metadata)  # ModelCardData's: `eval_results` + `model_name` → `model-index`
        return {key: value for key, value in metadata.items() if value is not None}

    @classmethod
    def from_run(
        cls, artifacts: RunArtifacts, repo_id: str | None = None, revision: str | None = None
    ) -> TransferCardData:
        """The card of the run in ``artifacts``; ``repo_id``/``revision`` go into the loading code (None: local)."""
        root, run, task, record = artifacts.output_dir, artifacts.run_config, artifacts.task, artifacts.record
        data, model = run.get("data") or {}, run.get("model") or {}
        training, strategy_args = run.get("training") or {}, run.get("strategy") or {}
        results = read_optional_json(root / "all_results.json")
        eval_results = read_optional_json(root / "eval_results.json") or results
        state = read_optional_json(root / TRAINER_STATE_FILENAME)
        from_scratch = record.from_scratch or bool(model.get("from_scratch"))
        revision_of_base = model.get("model_revision") or "main"
        problem_type = record.problem_type or SINGLE_LABEL
        text_columns = list(record.text_columns)
        multimodal = task == MULTIMODAL_CLASSIFICATION
        spec = _recorded_strategy(artifacts)
        towers = _towers(artifacts, spec, revision_of_base) if multimodal else []
        base = fusion_base(towers) if multimodal else run_base(artifacts, from_scratch, revision_of_base)
        hub_ids = base_hub_ids([tower.base for tower in towers] if multimodal else [base])
        strategy_names = spec.names
        # hf_transfer's image/text task names are the Hub's pipeline tags. No pipeline takes an image+text pair into
        # a fusion model: a tag would make the Hub show a widget and `pipeline()` code that cannot work.
        pipeline_tag = None if multimodal else task
        dataset_id = hub_dataset_id(data)
        rows = metric_rows(eval_results)
        trainable, total = results.get("trainable_parameters"), results.get("total_parameters")
        return cls(
            base_model=(hub_ids[0] if len(hub_ids) == 1 else hub_ids) or None,
            datasets=[dataset_id] if dataset_id else None,
            eval_results=model_index_results(rows, pipeline_tag or task, data, dataset_id) or None,
            # the kinds are named after the library that loads them; a fusion model needs hf_transfer's classes
            library_name=FUSION_LIBRARY if multimodal else artifacts.kind,
            license=base.license,
            metrics=sorted({row.metric.type for row in rows}) or None,
            model_name=(repo_id or root.resolve().name).split("/")[-1],
            pipeline_tag=pipeline_tag,
            tags=card_tags(artifacts, strategy_names),
            base_model_relation="finetune" if len(hub_ids) > 1 else None,
            kind=artifacts.kind,
            problem_type=problem_type,
            custom_code=artifacts.custom_code,
            closed_form_head=bool(record.head_fit),
            architecture=architecture_markdown(artifacts),
            base=base,
            from_scratch=from_scratch,
            strategies=[StrategyCard(name, strategy_summary(name)) for name in strategy_names],
            strategy_settings={k: v for k, v in strategy_args.items() if k != "strategy" and v is not None},
            trainable_parameters=trainable,
            total_parameters=total,
            trainable_share=trainable / total if trainable and total else None,
            trainable_note=BODY_PHASE_NOTE if record.body_phase else "",
            label_names=list(record.label_names or []),
            data=describe_data(data, record, problem_type),
            train_samples=record.train_samples or results.get("train_samples"),
            eval_samples=record.eval_samples or eval_results.get("eval_samples"),
            eval_split=EVAL_SPLIT,
            preprocessing=preprocessing_rows(artifacts),
            hyperparameters=hyperparameter_rows(training, results, record.head_fit),
            training_notes=training_notes(record),
            study=StudyChoice.of_cell(root),
            results=rows,
            eval_loss=eval_results.get("eval_loss"),
            best=best_checkpoint(state, training),
            curves_file=CURVES_FILENAME if (root / CURVES_FILENAME).exists() else None,
            confusion_file=CONFUSION_FILENAME if (root / CONFUSION_FILENAME).exists() else None,
            max_seq_length=record.max_seq_length,
            pooling=record.pooling,
            task_words=task_words(task, problem_type, len(text_columns)),
            noun="regression model" if problem_type == REGRESSION else task.replace("-classification", " classifier"),
            auto_class=AUTO_CLASSES[task],
            accuracy_margin=accuracy_margin(problem_type, record.eval_samples),
            load=loading_references(artifacts, repo_id, revision),
            image_column=column_name(data, "image"),
            label_column=column_name(data, "label"),
            text_columns=text_columns,
            image_mode="L" if (image_data_config(artifacts).get("input_size") or [3])[0] == 1 else "RGB",
            example_text=example_text(text_columns),
            ablation=ablation_table(rows, eval_results),
            towers=towers,
            fusion=fusion_head(artifacts) if multimodal else None,
        )


def _recorded_strategy(artifacts: RunArtifacts) -> StrategySpec:
    """The run's strategy as recorded ("lora+l2sp", "image: linear_probe, text: lora"), else as configured."""
    text = artifacts.record.strategy or str((artifacts.run_config.get("strategy") or {}).get("strategy") or "")
    return StrategySpec.parse(text, check=False)


def strategy_summary(name: str) -> str:
    """The first sentence of a registered strategy's docstring (its one-line "what trains")."""
    try:
        return first_sentence(get_strategy_class(name).__doc__)
    except ConfigError:  # registered by a plugin that is not imported here: the name alone still informs
        return ""


def _towers(artifacts: RunArtifacts, spec: StrategySpec, revision: str) -> list[TowerCard]:
    """The towers a fusion model's ``config.json`` describes, with how each was adapted (the recorded strategy of
    each tower; an older record names one strategy for all of them)."""
    record, config, fusion_args = artifacts.record, artifacts.model_config, artifacts.run_config.get("fusion") or {}
    cached = set(record.cached_features or [])
    towers = []
    for modality in MODALITIES:
        tower_config = config.get(f"{modality}_tower") or {}
        if not tower_config:
            continue
        reference = str(tower_config.get("reference") or getattr(record, f"{modality}_model") or "")
        scratch = bool(tower_config.get("from_scratch"))
        strategy = _tower_strategy(spec, modality, fusion_args.get(f"{modality}_strategy"))
        base = describe_base_model(reference, TOWER_TASKS[modality], scratch, revision)
        if modality == "image":
            base = with_declared_license(base, tower_config)
        towers.append(
            TowerCard(
                modality=modality,
                base=base,
                architecture=tower_architecture(modality, tower_config),
                num_features=tower_config.get("num_features"),
                strategy=strategy.text,
                strategies=[StrategyCard(name, strategy_summary(name)) for name in strategy.parts],
                frozen=modality in cached or _frozen(strategy),
                cached=modality in cached,
                from_scratch=scratch,
                learning_rate=fusion_args.get(f"{modality}_learning_rate"),
            )
        )
    return towers


def _tower_strategy(spec: StrategySpec, modality: str, configured: str | None) -> TowerSpec:
    try:
        return spec.tower(modality)
    except KeyError:
        return StrategySpec.parse(configured, check=False).tower() if configured else spec.towers[0]


def _frozen(tower: TowerSpec) -> bool:
    try:
        return tower.frozen_backbone
    except ConfigError:  # a strategy registered by a plugin that is not imported here
        return False
