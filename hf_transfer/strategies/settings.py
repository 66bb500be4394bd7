"""A strategy's settings, declared once beside its class, peft-style: type, default, help and check in one place.

The command-line/YAML dataclass (:mod:`hf_transfer.strategies.arguments`), its help text, the validation and the
README's strategy table are all derived from these declarations, so a default is written exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Check = Callable[[Any], "str | None"]  # returns what is wrong with a value ("must be > 0"), or None when it is fine


@dataclass
class StrategyArgumentsBase:
    """What every strategy-arguments dataclass has; the generated ``StrategyArguments`` adds one field per setting."""

    strategy: str | None = field(
        default=None,
        metadata={
            "help": "Transfer strategy, or several joined with '+' (e.g. 'freeze+llrd', 'full+l2sp+wise_ft'); "
            "`hf-transfer strategies` lists them. Default: chosen from the task and the labelled examples per class "
            "(text: contrastive up to 256 per class, full above; images: freeze of half the blocks up to 20 per "
            "class, full above), as measured (README: Defaults)."
        },
    )


@dataclass(frozen=True)
class Setting:
    """One strategy setting, e.g. ``Setting("lora_r", int, 8, "adapter rank", check=positive)``.

    ``default`` None with ``default_text`` describes a default computed at run time ("2 * r"). A setting several
    strategies read (``--train_bn``) is one shared ``Setting`` object.
    """

    name: str
    type: type
    default: Any
    help: str
    check: Check | None = None
    default_text: str | None = None

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def describe_default(self) -> str:
        """The default as the help text and the README show it."""
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if self.default is None:
            return "–"
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def problem(self, value: Any) -> str | None:
        """What is wrong with a user-given value, as one line naming the flag; None when it is acceptable."""
        if self.check is None or value is None:
            return None
        issue = self.check(value)
        return f"{self.flag} {issue}, got {value}." if issue else None


def positive(value: float) -> str | None:
    return None if value > 0 else "must be > 0"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be >= 0"


def in_half_open_unit(value: float) -> str | None:
    """(0, 1]: a decay factor."""
    return None if 0.0 < value <= 1.0 else "must be in (0, 1]"


def probability_below_one(value: float) -> str | None:
    """[0, 1): a dropout rate."""
    return None if 0.0 <= value < 1.0 else "must be in [0, 1)"


def one_of(*choices: str) -> Check:
    """A check that a value is one of ``choices``."""

    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check
