"""The strategy table of the README and of ``hf-transfer strategies``, generated from the registry.

Each row comes from a strategy's own class: its name, its ``summary`` and its declared settings with their defaults,
so the README cannot drift from the code (``tests/test_readme.py`` compares them).
"""

from __future__ import annotations

from .base import TransferStrategy
from .registry import registered_strategies

TABLE_HEADER = "| `--strategy` | what trains / what it adds | settings (defaults) |\n| --- | --- | --- |"


def settings_text(cls: type[TransferStrategy]) -> str:
    """``--lora_r` (8), `--lora_alpha` (2r)`` ...: each declared setting and its default, then the strategy's own
    default learning rate (when it has one)."""
    parts = [f"`{s.flag}` ({s.describe_default()})" for s in cls.settings]
    if cls.default_learning_rate:
        parts.append(f"default `--learning_rate` {cls.default_learning_rate:g}")
    return ", ".join(parts) or "–"


def strategy_table_markdown() -> str:
    rows = [
        f"| `{cls.name}` | {_cell(cls.summary or _first_sentence(cls))} | {_cell(settings_text(cls))} |"
        for cls in registered_strategies()
    ]
    return "\n".join([TABLE_HEADER, *rows])


def strategy_table_text() -> str:
    """A plain listing for the terminal: name, kind, settings, summary."""
    lines = []
    for cls in registered_strategies():
        lines.append(f"{cls.name:<18} {cls.kind:<16} {settings_text(cls).replace('`', '')}")
        lines.append(f"{'':<18} {cls.summary or _first_sentence(cls)}")
    return "\n".join(lines)


def _first_sentence(cls: type[TransferStrategy]) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
