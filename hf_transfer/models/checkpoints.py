"""Bare checkpoint files: read safely, convert foreign key layouts, and load strictly.

timm loads a bare checkpoint non-strictly (it drops the classifier for a new class count, then ``strict=False``), so a
file from another architecture or another code base's naming silently leaves a random network behind a log line of
"Missing keys ...". Everything here fails loudly instead: either every backbone tensor comes from the file with the
right shape, or the user gets one actionable line (or opts into a partial load and gets a one-line warning).
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..exceptions import ConfigError

logger = logging.getLogger(__name__)

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # training-loop checkpoints nest the weights
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")  # DataParallel/DDP, torch.compile, Lightning-style modules
_COUNTER_SUFFIX = "num_batches_tracked"  # a BatchNorm step counter, not a weight: neither required nor counted


# ----------------------------------------------------------------------------------------------------------- reading


def _first_line(err: BaseException, limit: int = 160) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ConfigError(
            f"{path} holds a {type(obj).__name__}, not a state_dict of named tensors; "
            "re-save it with torch.save(model.state_dict(), path) or as .safetensors."
        )
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise ConfigError(f"{path} holds no tensors; is it a model checkpoint?")
    changed = True
    while changed:  # strip wrapper prefixes only when every key carries them, so a real module name is never cut
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict without ever executing code from it.

    ``.pth``-style files go through ``torch.load(weights_only=True)``: a pickle that needs arbitrary classes is refused
    rather than run. Every failure is a one-line ``ConfigError`` so the CLI never shows a traceback for a bad file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Checkpoint file {path} does not exist or is not a file.")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file

            obj: object = load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own SafetensorError for truncated or corrupt headers
            raise ConfigError(
                f"{path} is not a readable .safetensors file (truncated or corrupt?): {_first_line(err)}"
            ) from None
    elif suffix in _TORCH_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError, zip-reader RuntimeError, EOFError, ...: never a traceback
            if isinstance(err, pickle.UnpicklingError) and "weights only load failed" in str(err).lower():
                raise ConfigError(
                    f"{path} holds code or Python objects that are not plain tensors, so it was not loaded for "
                    "safety; re-save just the weights with torch.save(model.state_dict(), path) or as .safetensors."
                ) from None
            raise ConfigError(
                f"{path} is not a readable checkpoint (truncated or corrupt?): {_first_line(err)}"
            ) from None
    else:
        raise ConfigError(
            f"{path} has an unknown checkpoint extension {suffix or '(none)'!r}; "
            f"expected .safetensors or one of {', '.join(_TORCH_SUFFIXES)}."
        )
    return _unwrap(obj, path)


# ----------------------------------------------------------------------------------------- foreign layout: lukemelas


_EFFICIENTNET_PYTORCH = "efficientnet_pytorch"
_LUKEMELAS_BLOCK = re.compile(r"^_blocks\.(\d+)\.(_\w+)\.(.+)$")
_LUKEMELAS_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_SE_PARTS = {"_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand"}
# lukemelas numbers a block's BNs by position in the full inverted residual (_bn0 = after expansion), timm numbers
# them by position in the block it actually built; and timm's "conv_pw" is the projection in a DepthwiseSeparableConv
# but the expansion in an InvertedResidual. So the part map depends on the timm block kind.
_LUKEMELAS_PARTS = {
    "DepthwiseSeparableConv": {
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn1",
        "_project_conv": "conv_pw",
        "_bn2": "bn2",
        **_SE_PARTS,
    },
    "InvertedResidual": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
        **_SE_PARTS,
    },
}


@dataclass(frozen=True)
class BlockSlot:
    """Where the i-th block of a flat lukemelas ``_blocks`` list lives in timm: ``blocks.<stage>.<index>``."""

    stage: int
    index: int
    kind: str  # timm class name: "DepthwiseSeparableConv" or "InvertedResidual"


def architecture_name(model: nn.Module) -> str:
    """timm's architecture name for messages, falling back to the class name for non-timm modules."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    return str(cfg.get("architecture") or type(model).__name__)


def efficientnet_block_slots(timm_model: nn.Module) -> list[BlockSlot]:
    """Read stage sizes and block kinds off a timm EfficientNet, so no architecture's sizes are hard-coded.

    Class names are compared exactly: timm's ``CondConvResidual`` subclasses ``InvertedResidual`` but has differently
    shaped expert weights that no efficientnet_pytorch file holds.
    """
    arch = architecture_name(timm_model)
    stages = getattr(timm_model, "blocks", None)
    not_efficientnet = ConfigError(
        f"this {_EFFICIENTNET_PYTORCH} checkpoint is an EfficientNet, but {arch} is not one built from timm's "
        "EfficientNet blocks; pass --architecture with the checkpoint's own, e.g. efficientnet_b0 or "
        "tf_efficientnet_lite0."
    )
    if not isinstance(stages, nn.Sequential) or not all(isinstance(stage, nn.Sequential) for stage in stages):
        raise not_efficientnet
    slots = []
    for s, stage in enumerate(stages):
        for i, block in enumerate(stage):
            kind = type(block).__name__
            if kind not in _LUKEMELAS_PARTS:
                raise ConfigError(
                    f"{arch} uses {kind} blocks (blocks.{s}.{i}), which the {_EFFICIENTNET_PYTORCH} layout has no "
                    "equivalent of; only the original EfficientNet-B*/L2 and EfficientNet-Lite families convert."
                )
            slots.append(BlockSlot(s, i, kind))
    if not slots:
        raise not_efficientnet
    return slots


def efficientnet_pytorch_key(key: str, slots: Sequence[BlockSlot]) -> str:
    """Map one lukemelas/efficientnet_pytorch key to timm's name; unknown parts pass through unchanged.

    Passing unknown names through (rather than dropping them) lets the strict loader report them as unexpected.
    """
    match = _LUKEMELAS_BLOCK.match(key)
    if match is None:
        module, dot, rest = key.partition(".")
        return f"{_LUKEMELAS_TOP_LEVEL[module]}.{rest}" if dot and module in _LUKEMELAS_TOP_LEVEL else key
    number, part, rest = int(match.group(1)), match.group(2), match.group(3)
    if number >= len(slots):
        raise ConfigError(f"{key} names block {number}, but the architecture has only {len(slots)} blocks.")
    slot = slots[number]
    target = _LUKEMELAS_PARTS[slot.kind].get(part)
    return f"blocks.{slot.stage}.{slot.index}.{target}.{rest}" if target else key


def _shape(tensor: Tensor) -> str:
    return str(tuple(tensor.shape))


def convert_efficientnet_pytorch(state: Mapping[str, Tensor], timm_model: nn.Module) -> dict[str, Tensor]:
    """Rename a lukemelas/efficientnet_pytorch state dict to the keys of ``timm_model`` (any EfficientNet/-Lite).

    The file's flat ``_blocks.N`` list is laid onto the model's stages in order; block count, expansion presence and
    every non-head tensor shape are checked here so a wrong ``--architecture`` is named plainly, before loading.
    """
    arch = architecture_name(timm_model)
    slots = efficientnet_block_slots(timm_model)
    numbers = {int(m.group(1)) for m in map(_LUKEMELAS_BLOCK.match, state) if m}
    count = max(numbers) + 1 if numbers else 0
    if count != len(slots):
        raise ConfigError(
            f"this {_EFFICIENTNET_PYTORCH} checkpoint has {count} blocks; {arch} has {len(slots)}. "
            "Pass --architecture with the checkpoint's own architecture."
        )
    expands = {int(m.group(1)) for m in map(_LUKEMELAS_BLOCK.match, state) if m and m.group(2) == "_expand_conv"}
    for number, slot in enumerate(slots):
        if (number in expands) != (slot.kind == "InvertedResidual"):
            has = "has" if number in expands else "has no"
            raise ConfigError(
                f"block {number} of this {_EFFICIENTNET_PYTORCH} checkpoint {has} expansion conv, but {arch}'s "
                f"blocks.{slot.stage}.{slot.index} is a {slot.kind}. "
                "Pass --architecture with the checkpoint's own architecture."
            )
    target_state = timm_model.state_dict()
    converted: dict[str, Tensor] = {}
    for key, tensor in state.items():
        name = efficientnet_pytorch_key(key, slots)
        expected = target_state.get(name)
        if expected is not None and not name.startswith("classifier.") and expected.shape != tensor.shape:
            raise ConfigError(
                f"this {_EFFICIENTNET_PYTORCH} checkpoint's {key} has shape {_shape(tensor)}; {arch}'s {name} has "
                f"{_shape(expected)}. Pass --architecture with the checkpoint's own architecture."
            )
        converted[name] = tensor.contiguous()  # timm-converted files are saved as safetensors, which needs contiguity
    return converted


def _looks_like_efficientnet_pytorch(state: Mapping[str, Tensor]) -> bool:
    return any(_LUKEMELAS_BLOCK.match(k) for k in state)


@dataclass(frozen=True)
class ForeignLayout:
    """A non-timm key naming that can be recognised from its keys and renamed to a given timm model's."""

    detect: Callable[[Mapping[str, Tensor]], bool]
    convert: Callable[[Mapping[str, Tensor], nn.Module], dict[str, Tensor]]


FOREIGN_LAYOUTS: dict[str, ForeignLayout] = {
    _EFFICIENTNET_PYTORCH: ForeignLayout(_looks_like_efficientnet_pytorch, convert_efficientnet_pytorch),
}


def detect_layout(state: Mapping[str, Tensor]) -> str | None:
    """Name the foreign layout ``state`` is in, or None when it is (presumably) already timm's naming."""
    return next((name for name, layout in FOREIGN_LAYOUTS.items() if layout.detect(state)), None)


def convert_foreign_layout(state: Mapping[str, Tensor], timm_model: nn.Module) -> tuple[dict[str, Tensor], str | None]:
    """Convert ``state`` to ``timm_model``'s names if it is in a known foreign layout; return it and the layout."""
    layout = detect_layout(state)
    if layout is None:
        return dict(state), None
    return FOREIGN_LAYOUTS[layout].convert(state, timm_model), layout


# ---------------------------------------------------------------------------------------------------- strict loading


@dataclass(frozen=True)
class LoadReport:
    """What a bare-checkpoint load took from the file; ``summary()`` goes to the log and the model card."""

    matched: int
    total: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched_shapes: tuple[str, ...]
    skipped_head: tuple[str, ...]
    layout: str | None = None

    @property
    def complete(self) -> bool:
        return self.matched == self.total and not self.unexpected

    def summary(self) -> str:
        text = f"{self.matched} of {self.total} backbone weights from the checkpoint"
        if self.layout:
            text += f" (converted from the {self.layout} layout)"
        if self.matched < self.total:
            text += f"; {self.total - self.matched} randomly initialised"
        if self.skipped_head:
            text += f"; new head ({', '.join(self.skipped_head)})"
        return text


def _examples(names: Sequence[str], n: int = 3) -> str:
    more = f" ({len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def _is_counter(key: str) -> bool:
    return key.rsplit(".", 1)[-1] == _COUNTER_SUFFIX


def load_checkpoint_strictly(
    model: nn.Module,
    state: Mapping[str, Tensor],
    head_prefixes: Sequence[str],
    allow_partial: bool = False,
    source: str = "",
    layout: str | None = None,
) -> LoadReport:
    """Load ``state`` into ``model`` requiring every backbone tensor to come from it with the right shape.

    Only keys under ``head_prefixes`` may be absent or differently shaped (a new head for another class count) and
    are then left as initialised; a same-shaped head is loaded. BatchNorm ``num_batches_tracked`` counters are neither
    required nor counted: many exports omit them and they do not affect the network. Anything else raises a one-line
    ``ConfigError`` unless ``allow_partial``, which loads what fits and logs one warning.
    """
    heads = tuple(head_prefixes)
    in_head = (lambda k: k.startswith(heads)) if heads else (lambda k: False)
    target = model.state_dict()
    backbone = [k for k in target if not in_head(k) and not _is_counter(k)]
    missing, mismatched, loadable = [], [], {}
    for key in backbone:
        if key not in state:
            missing.append(key)
        elif state[key].shape != target[key].shape:
            mismatched.append(f"{key} {_shape(state[key])} vs {_shape(target[key])}")
        else:
            loadable[key] = state[key]
    matched = len(loadable)
    skipped_head = [k for k in target if in_head(k) and not (k in state and state[k].shape == target[k].shape)]
    skipped_head += [k for k in state if in_head(k) and k not in target]
    for key in target:
        if (in_head(key) or _is_counter(key)) and key in state and state[key].shape == target[key].shape:
            loadable[key] = state[key]
    unexpected = [k for k in state if k not in target and not in_head(k) and not _is_counter(k)]
    report = LoadReport(
        matched=matched,
        total=len(backbone),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched_shapes=tuple(mismatched),
        skipped_head=tuple(skipped_head),
        layout=layout,
    )
    source = source or "the checkpoint"
    if missing or mismatched or unexpected:
        problems = [f"{matched} of {len(backbone)} weights matched"]
        if missing:
            problems.append(f"missing e.g. {_examples(missing)}")
        if unexpected:
            problems.append(f"unexpected e.g. {_examples(unexpected)}")
        if mismatched:
            problems.append(f"wrong shape (checkpoint vs model) e.g. {_examples(mismatched)}")
        if not allow_partial:
            raise ConfigError(
                f"{source} does not fit {architecture_name(model)}: {'; '.join(problems)}. Pass --architecture with "
                "the checkpoint's own architecture, or --allow_partial_checkpoint to train anyway with the unmatched "
                "weights randomly initialised."
            )
        unmatched = missing + [m.split(" ", 1)[0] for m in mismatched]
        logger.warning(
            "Partial checkpoint load (--allow_partial_checkpoint): only %d of %d backbone weights of %s came from %s; "
            "%d are randomly initialised, e.g. %s.",
            matched,
            len(backbone),
            architecture_name(model),
            source,
            len(unmatched),
            _examples(unmatched) if unmatched else f"none (ignored unexpected {_examples(unexpected)})",
        )
    result = model.load_state_dict(loadable, strict=False)
    if result.unexpected_keys:  # cannot happen: loadable holds only the model's own keys; guard the invariant anyway
        raise RuntimeError(f"unexpected keys while loading: {result.unexpected_keys[:3]}")
    return report


def load_bare_checkpoint(
    model: nn.Module, path: str | Path, head_prefixes: Sequence[str], allow_partial: bool = False
) -> LoadReport:
    """Read ``path``, convert a foreign layout to ``model``'s names, load strictly, and log the one-line summary."""
    state = read_state_dict(path)
    try:
        state, layout = convert_foreign_layout(state, model)
    except ConfigError as err:  # the converter speaks of "this checkpoint"; name the file for the CLI user
        raise ConfigError(f"{path}: {err}") from None
    report = load_checkpoint_strictly(model, state, head_prefixes, allow_partial, source=str(path), layout=layout)
    logger.info("Loaded %s: %s", path, report.summary())
    return report
