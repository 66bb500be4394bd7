"""``StrategyArguments``: the command-line/YAML/Python dataclass of the strategy settings, derived from the registry.

One field per declared :class:`~hf_transfer.strategies.settings.Setting` (shared settings once), each ``None`` by
default ("not set": the strategy's declared default applies, and a setting given to a strategy that does not read it
is an error). The help text names the strategies that read it and their default, so nothing is written twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# isort: off
# Registration, in the order the README's table lists them: what trains, then learning rates, regularisers, post-hoc.
from . import freezing, contrastive, schedules, adapters, learning_rates, regularisers, wise_ft  # noqa: F401

# isort: on
from .compose import declared_settings
from .registry import get_strategy_class, list_strategies
from .settings import Setting, StrategyArgumentsBase

# `bool | None` fields given bare (`--merge_adapter`) mean True: HfArgumentParser would otherwise ask for a value.
_BARE_FLAG: dict[str, Any] = {"nargs": "?", "const": True}


def _field(setting: Setting) -> tuple[str, Any, Any]:
    readers = [name for name in list_strategies() if setting.name in get_strategy_class(name).setting_names()]
    help_text = f"{'/'.join(readers)}: {setting.help} ({setting.describe_default()})."
    metadata: dict[str, Any] = {"help": help_text, **(_BARE_FLAG if setting.type is bool else {})}
    return setting.name, setting.type | None, dataclasses.field(default=None, metadata=metadata)


def build_strategy_arguments_class() -> type[StrategyArgumentsBase]:
    """A dataclass with ``strategy`` and one optional field per setting the registered strategies declare."""
    cls = dataclasses.make_dataclass(
        "StrategyArguments", [_field(s) for s in declared_settings()], bases=(StrategyArgumentsBase,)
    )
    cls.__module__ = __name__
    cls.__doc__ = "Which transfer strategy, and its settings (derived from the strategy registry)."
    return cls


StrategyArguments = build_strategy_arguments_class()


def strategy_arguments_class() -> type[StrategyArgumentsBase]:
    """The arguments dataclass of every strategy registered *now*: the built-in ``StrategyArguments`` unless a
    strategy registered later declares a setting of its own (then a class with that field too)."""
    global _current
    names = {f.name for f in dataclasses.fields(_current)}
    if any(setting.name not in names for setting in declared_settings()):
        _current = build_strategy_arguments_class()
    return _current


_current: type[StrategyArgumentsBase] = StrategyArguments
