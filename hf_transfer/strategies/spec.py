"""A run's strategy, parsed once: :class:`StrategySpec` knows its parts, their kinds, the settings they read and
whether the backbone stays frozen, per tower; every other module asks it instead of splitting strings.

Text forms (what ``--strategy`` takes, what the run records): ``"lora+l2sp"`` for one model, ``"image: linear_probe,
text: lora"`` for the towers of an image+text model. ``str(spec)`` writes the same form back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from ..exceptions import ConfigError
from .base import TRAINABLE, TransferStrategy, check_compatible
from .registry import get_strategy_class
from .settings import StrategyArgumentsBase

MODEL = ""  # the name of the one "tower" of a single-model run


@dataclass(frozen=True)
class TowerSpec:
    """One tower's composition: the registered strategy names, as given (``full`` implied when no part sets what
    trains)."""

    tower: str  # MODEL, "image" or "text"
    parts: tuple[str, ...]

    @property
    def classes(self) -> list[type[TransferStrategy]]:
        return [get_strategy_class(name) for name in self.parts]

    @property
    def text(self) -> str:
        return "+".join(self.parts)

    @property
    def settings_read(self) -> frozenset[str]:
        return frozenset(name for cls in self.classes for name in cls.setting_names())

    @property
    def frozen_backbone(self) -> bool:
        """Nothing of the backbone trains (its features are fixed: cacheable, no augmentation by default)."""
        return any(cls.frozen_backbone for cls in self.classes)

    @property
    def pooling(self) -> str | None:
        """The text pooling a strategy needs (contrastive: mean), else None (the model's default)."""
        return next((cls.pooling for cls in self.classes if cls.pooling), None)

    @property
    def trainable_set(self) -> str:
        """The part that decides what trains (``full`` when none does)."""
        return next((cls.name for cls in self.classes if cls.kind == TRAINABLE), "full")


@dataclass(frozen=True)
class StrategySpec:
    """The parsed strategy of a run: one :class:`TowerSpec` per tower (one, named ``MODEL``, for a single model)."""

    towers: tuple[TowerSpec, ...]

    @classmethod
    def parse(cls, text: str, check: bool = True) -> StrategySpec:
        """``"a+b"`` or ``"image: a, text: b+c"``; unknown names, repeats and bad compositions are one line each.
        ``check=False`` reads a recorded strategy without the registry (a card of a run made with a plugin)."""
        text = text.strip()
        if ":" not in text:
            return cls((_tower(MODEL, text, check),))
        towers = []
        for item in text.split(","):
            tower, _, parts = item.partition(":")
            towers.append(_tower(tower.strip(), parts, check))
        if len({t.tower for t in towers}) != len(towers):
            raise ConfigError(f"--strategy {text!r}: name each tower once.")
        return cls(tuple(towers))

    @classmethod
    def per_tower(cls, choices: dict[str, str]) -> StrategySpec:
        """The towers' strategies of an image+text run, e.g. ``{"image": "linear_probe", "text": "lora"}``."""
        towers = []
        for tower, text in choices.items():
            try:
                towers.append(_tower(tower, text))
            except ConfigError as err:
                raise ConfigError(f"{tower} tower: {err}") from err
        return cls(tuple(towers))

    def __str__(self) -> str:
        if len(self.towers) == 1 and self.towers[0].tower == MODEL:
            return self.towers[0].text
        return ", ".join(f"{t.tower}: {t.text}" for t in self.towers)

    def tower(self, name: str = MODEL) -> TowerSpec:
        for tower in self.towers:
            if tower.tower == name:
                return tower
        raise KeyError(f"The strategy {str(self)!r} has no {name or 'model'} tower.")

    @property
    def names(self) -> list[str]:
        """Every strategy used, each once, in order of appearance."""
        return list(dict.fromkeys(name for tower in self.towers for name in tower.parts))

    @property
    def settings_read(self) -> frozenset[str]:
        """The settings some part of some tower reads; setting any other is an error."""
        return frozenset().union(*(tower.settings_read for tower in self.towers))

    @property
    def pooling(self) -> str | None:
        """The text pooling a tower's strategy needs, else None."""
        return next((tower.pooling for tower in self.towers if tower.pooling), None)

    @property
    def frozen_backbone(self) -> bool:
        """Every tower's backbone stays frozen."""
        return all(tower.frozen_backbone for tower in self.towers)


def settings_read_by(strategies: Iterable[str]) -> frozenset[str]:
    """The settings at least one of several strategies (a study's ``--strategies``) reads."""
    return frozenset().union(*(StrategySpec.parse(text).settings_read for text in strategies))


def restricted_to(args: StrategyArgumentsBase, strategy: str) -> StrategyArgumentsBase:
    """``args`` for ``strategy`` alone: that name, and only the settings it reads (the others unset), as a study cell
    or a fusion tower gets them."""
    read = StrategySpec.parse(strategy).settings_read
    unread = {f.name: None for f in dataclasses.fields(args) if f.name != "strategy" and f.name not in read}
    return dataclasses.replace(args, strategy=strategy, **unread)


def _tower(tower: str, text: str, check: bool = True) -> TowerSpec:
    names = tuple(part.strip() for part in text.split("+"))
    if check:
        if not all(names) or len(set(names)) != len(names):
            raise ConfigError(f"--strategy {text.strip()!r}: join distinct strategy names with '+'.")
        check_compatible([get_strategy_class(name) for name in names])
    return TowerSpec(tower, tuple(name for name in names if name))
