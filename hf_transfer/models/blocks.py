"""A uniform *block view* of a backbone: stem, ordered blocks, head.

Strategies (freezing, layer-wise learning rates, gradual unfreezing) only ever talk to this view, so they work on any
backbone that can describe itself this way: timm models through their own ``group_matcher``, BERT-family encoders
through embeddings / encoder layers / pooler.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn


@dataclass
class BlockView:
    """Parameter names of ``model`` grouped from input to output.

    ``stem`` runs before the first block (timm stem, BERT embeddings); ``blocks`` are the repeated units in forward
    order; ``head`` is the new task head, the part every strategy trains. Names are relative to ``model``.
    """

    model: nn.Module
    stem: list[str]
    blocks: list[list[str]]
    head: list[str]
    block_names: list[str] = field(default_factory=list)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def groups(self) -> list[list[str]]:
        """Stem, every block, then head, in forward order."""
        return [self.stem, *self.blocks, self.head]

    def parameters(self, names: list[str]) -> Iterator[nn.Parameter]:
        params = dict(self.model.named_parameters())
        return (params[name] for name in names)

    def body(self) -> list[str]:
        return [name for group in (self.stem, *self.blocks) for name in group]

    def check_complete(self) -> None:
        """Every trainable tensor must sit in exactly one group, or a strategy would silently skip it."""
        grouped = [name for group in self.groups() for name in group]
        all_names = [name for name, _ in self.model.named_parameters()]
        missing, duplicated = set(all_names) - set(grouped), len(grouped) - len(set(grouped))
        if missing or duplicated:
            raise RuntimeError(f"Block view is incomplete: ungrouped {sorted(missing)[:5]}, {duplicated} duplicates.")


def timm_block_view(model: nn.Module, timm_model: nn.Module, prefix: str = "") -> BlockView:
    """Build the view of a timm model from its ``group_matcher`` (the same grouping timm's layer decay uses).

    ``prefix`` is the timm model's attribute path inside ``model`` (``"timm_model."`` for transformers' wrapper).
    """
    from timm.models import group_parameters

    head_module = timm_model.get_classifier()
    head_ids = {id(p) for p in head_module.parameters()}
    named = [(name, p) for name, p in timm_model.named_parameters() if id(p) not in head_ids]
    body = dict(named)
    grouped = group_parameters(_NamedParams(body), timm_model.group_matcher(coarse=False))
    ordered = [sorted(names, key=list(body).index) for _, names in sorted(grouped.items())]
    stem, blocks = (ordered[0], ordered[1:]) if len(ordered) > 1 else ([], ordered)
    head = [name for name, p in timm_model.named_parameters() if id(p) in head_ids]

    def add(names: list[str]) -> list[str]:
        return [prefix + n for n in names]

    return BlockView(
        model=model,
        stem=add(stem),
        blocks=[add(b) for b in blocks],
        head=add(head),
        block_names=[_common_prefix(b) for b in blocks],
    )


class _NamedParams:
    """Adapter: timm's ``group_parameters`` wants an object with ``named_parameters()``."""

    def __init__(self, params: dict[str, nn.Parameter]):
        self._params = params

    def named_parameters(self):
        return iter(self._params.items())


def _common_prefix(names: list[str]) -> str:
    """A readable label for a block: its module path, plus any trailing modules grouped with it (``+conv_head``)."""
    first = names[0].split(".")[0]
    main = [n.split(".")[:-1] for n in names if n.split(".")[0] == first]
    common: list[str] = []
    for tokens in zip(*main):
        if len(set(tokens)) != 1:
            break
        common.append(tokens[0])
    extras = dict.fromkeys(".".join(n.split(".")[:-1]) for n in names if n.split(".")[0] != first)
    return "+".join([".".join(common) or first, *extras])


def is_frozen(module: nn.Module | None) -> bool:
    """Nothing of ``module`` trains (the strategy has set every ``requires_grad`` off): a fixed function of its input,
    which the feature cache may stand in for."""
    return module is not None and not any(p.requires_grad for p in module.parameters())
