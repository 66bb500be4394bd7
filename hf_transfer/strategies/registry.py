"""Strategies registered by name, timm-style: ``@register_strategy("lora")`` on a small class in its own file."""

from __future__ import annotations

import difflib
from typing import TypeVar

from ..exceptions import ConfigError
from .base import TransferStrategy

_REGISTRY: dict[str, type[TransferStrategy]] = {}
S = TypeVar("S", bound=type[TransferStrategy])


def register_strategy(name: str):
    """Class decorator: make a strategy selectable with ``--strategy NAME``."""

    def decorator(cls: S) -> S:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"Strategy {name!r} is already registered by {_REGISTRY[name].__qualname__}.")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def list_strategies() -> list[str]:
    return sorted(_REGISTRY)


def registered_strategies() -> list[type[TransferStrategy]]:
    """Every registered strategy class, in registration order (the built-ins: trainable set first)."""
    return list(_REGISTRY.values())


def get_strategy_class(name: str) -> type[TransferStrategy]:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"--strategy: unknown strategy {name!r}.{hint} Available: {', '.join(list_strategies())}.")
    return _REGISTRY[name]
