"""What a finished run directory holds, whether it is complete, and which of its files go to the Hub.

A push must never publish half a model: everything here is checked on local disk before any network call, and the
repo gets only what a user needs (weights, configs, tokenizer, custom code, card, plots, results), never Trainer
checkpoints, optimizer states or pickled ``training_args.bin``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..config import (
    CONFIG_FILENAME,
    EVAL_PREDICTIONS_FILENAME,
    FUSION_MODEL_TYPE,
    MULTIMODAL_CLASSIFICATION,
    TEXT_CLASSIFICATION,
)
from ..run_record import RunRecord

CARD_FILENAME = "README.md"
CURVES_FILENAME = "training_curves.png"
CONFUSION_FILENAME = "confusion_matrix.png"

# Top-level files of these types are pushed: weights, configs, tokenizer files (vocab.txt, merges.txt, *.model, chat
# templates), the card and its plots. Sub-directories (checkpoint-*, runs/, merged/) never are.
_PUSHED_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".jinja", ".png", ".md")
# Per-example validation predictions: bulky, and they reveal the validation data; the card carries their summary.
_NEVER_PUSHED = frozenset({EVAL_PREDICTIONS_FILENAME})
# Files whose stale copies on the Hub would change how the repo loads (transformers loads any repo holding an
# adapter_config.json as a PEFT adapter): a push deletes those it does not upload again.
FORMAT_FILES = (
    "config.json",
    "model.safetensors",
    "model-*.safetensors",
    "model.safetensors.index.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    CURVES_FILENAME,
    CONFUSION_FILENAME,
)

RunKind = Literal["timm", "transformers", "peft"]


class IncompleteRunError(ValueError):
    """The directory is not a complete hf_transfer run: nothing was (or may be) pushed."""


@dataclass(frozen=True)
class RunArtifacts:
    output_dir: Path
    kind: RunKind
    task: str
    run_config: dict[str, Any]  # hf_transfer_config.json
    model_config: dict[str, Any]  # config.json (timm/transformers) or adapter_config.json (peft)

    @property
    def record(self) -> RunRecord:
        """What the run did (its provenance), typed."""
        return RunRecord.of_run_config(self.run_config)

    @property
    def custom_code(self) -> bool:
        """True when the model loads through ``auto_map`` modules saved beside it (``trust_remote_code=True``)."""
        return bool(self.model_config.get("auto_map")) and self.kind == "transformers"

    def files_to_push(self) -> list[str]:
        """Names (relative to ``output_dir``) of the files a Hub repo of this run gets."""
        names = []
        for path in sorted(self.output_dir.iterdir()):
            hidden = path.name.startswith(".")  # the run's lock and owner files, editor droppings
            if path.is_file() and not hidden and path.suffix in _PUSHED_SUFFIXES and path.name not in _NEVER_PUSHED:
                names.append(path.name)
        return sorted({*names, *_auto_map_modules(self.model_config)})


def inspect_run(output_dir: str | Path) -> RunArtifacts:
    """Check that ``output_dir`` holds a complete run in a native format, and say which format.

    Raises :class:`IncompleteRunError` naming the first missing or truncated file.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise IncompleteRunError(f"{root} is not a directory.")
    run_config = _read_json(root / CONFIG_FILENAME, "is it the --output_dir of an hf_transfer run?")
    if "task" not in run_config:
        raise IncompleteRunError(f"{root / CONFIG_FILENAME} has no 'task': not written by hf_transfer.")
    if (root / "adapter_config.json").exists():
        adapter = _read_json(root / "adapter_config.json", "")
        check_safetensors(root / "adapter_model.safetensors")
        return RunArtifacts(root, "peft", run_config["task"], run_config, adapter)
    config = _read_json(root / "config.json", "the model's config is missing")
    if "architecture" in config:  # timm's config; transformers' configs have `architectures`/`model_type`
        kind: RunKind = "timm"
        if not config.get("label_names"):
            raise IncompleteRunError(f"{root / 'config.json'} has no label_names: loaders would show class indices.")
    elif "model_type" in config or "architectures" in config:
        kind = "transformers"
        if run_config["task"] == TEXT_CLASSIFICATION and not (root / "tokenizer_config.json").is_file():
            raise IncompleteRunError(f"{root} has no tokenizer_config.json: pipeline() could not tokenise text.")
        if run_config["task"] == MULTIMODAL_CLASSIFICATION:
            _check_fusion_model(root, config)
        for module in _auto_map_modules(config):
            if not (root / module).is_file():
                raise IncompleteRunError(f"{root / module} is missing: config.json's auto_map needs it.")
    else:
        raise IncompleteRunError(f"{root / 'config.json'} is neither a timm nor a transformers config.")
    _check_weights(root)
    return RunArtifacts(root, kind, run_config["task"], run_config, config)


def check_safetensors(path: Path) -> None:
    """A safetensors file is complete when its header's last tensor ends exactly at the end of the file.

    Reads only the header: cheap even for multi-GB weights, and it catches a copy or save that was cut short.
    """
    if not path.is_file():
        raise IncompleteRunError(f"{path} is missing.")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 0 < header_size <= size - 8:
            raise IncompleteRunError(f"{path} is not a safetensors file (or is truncated).")
        try:
            header = json.loads(handle.read(header_size))
        except ValueError as err:
            raise IncompleteRunError(f"{path} has a corrupt safetensors header.") from err
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + header_size + end != size:
        raise IncompleteRunError(f"{path} is truncated ({size} bytes; its header describes {8 + header_size + end}).")


def _check_weights(root: Path) -> None:
    index = root / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index, "").get("weight_map", {}).values()))
        if not shards:
            raise IncompleteRunError(f"{index} lists no weight files.")
        for shard in shards:
            check_safetensors(root / shard)
    else:
        check_safetensors(root / "model.safetensors")


def _check_fusion_model(root: Path, config: dict[str, Any]) -> None:
    """A multimodal run is one fusion model: its config rebuilds the towers, and a text tower needs its tokenizer."""
    if config.get("model_type") != FUSION_MODEL_TYPE:
        raise IncompleteRunError(
            f"{root / 'config.json'} has model_type {config.get('model_type')!r}, not {FUSION_MODEL_TYPE!r}: "
            "a multimodal-classification run saves one fusion model."
        )
    if not (config.get("image_tower") or config.get("text_tower")):
        raise IncompleteRunError(f"{root / 'config.json'} describes neither an image nor a text tower.")
    if config.get("text_tower") and not (root / "tokenizer_config.json").is_file():
        raise IncompleteRunError(f"{root} has no tokenizer_config.json: the text tower's input could not be made.")


def _auto_map_modules(config: dict[str, Any]) -> list[str]:
    """Local modules named by ``auto_map`` ("pooled_text.MeanPooledClassifier" → "pooled_text.py"); references into
    another repo ("org/repo--module.Class") load from there and need no local file."""
    references = []
    for value in (config.get("auto_map") or {}).values():
        references.extend(value if isinstance(value, list) else [value])
    local = [ref for ref in references if isinstance(ref, str) and "--" not in ref]
    return sorted({ref.rsplit(".", 1)[0].replace(".", "/") + ".py" for ref in local})


def _read_json(path: Path, hint: str) -> dict[str, Any]:
    if not path.is_file():
        ending = f"; {hint}" if hint else ""
        raise IncompleteRunError(f"{path} is missing{ending}" + ("" if ending.endswith("?") else "."))
    try:
        loaded = json.loads(path.read_text())
    except ValueError as err:
        raise IncompleteRunError(f"{path} is not valid JSON ({err}).") from err
    if not isinstance(loaded, dict):
        raise IncompleteRunError(f"{path} does not hold a JSON object.")
    return loaded
