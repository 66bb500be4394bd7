"""How every entry point reads its flags: transformers' ``HfArgumentParser`` over dataclasses.

One declaration per flag (type, default, help) serves the command line, ``--config`` YAML files and Python. On top of
``HfArgumentParser``: every error is one line naming the flag (or the YAML file and key) instead of a page of usage;
an unknown flag gets its close names; a field may be positional (``metadata={"positional": True}``) or take an
argparse action of its own (``{"action": "append"}``, ``{"action": "store_true"}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import types
from typing import Any, NoReturn, Union, get_args, get_origin

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

from .exceptions import ConfigError

_ARGUMENT = re.compile(r"^argument (?P<name>[^/:]+)(?:/[^:]+)?: ")


class ArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` whose errors raise :class:`ConfigError` (one line) instead of printing usage, exit 2."""

    def error(self, message: str) -> NoReturn:
        message = _ARGUMENT.sub(r"\g<name>: ", message)
        raise ConfigError(f"{message} (see `{self.prog} --help`).")

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        """Positional fields and fields with their own argparse action are added here; the rest as transformers
        adds them (``--name`` and ``--name-with-hyphens``, bool flags with ``--no_name``, lists as ``nargs='+'``)."""
        metadata = dict(field.metadata)
        positional = metadata.pop("positional", False)
        if not positional and "action" not in metadata:
            HfArgumentParser._parse_dataclass_field(parser, field)
            return
        item_type, is_list = _item_type(field.type)
        if metadata.get("action") in (None, "append"):
            metadata["type"] = item_type
        if field.default is not dataclasses.MISSING:
            metadata["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            metadata["default"] = field.default_factory()
        has_default = "default" in metadata
        if positional:
            metadata.setdefault("nargs", ("*" if has_default else "+") if is_list else ("?" if has_default else None))
            parser.add_argument(field.name, **metadata)
            return
        names = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        parser.add_argument(*names, required=not has_default, **metadata)


def parse_into_dataclasses(parser: ArgumentParser, argv: list[str]) -> tuple[Any, ...]:
    """One instance per dataclass of ``parser``; an unknown flag, a bad value or a dataclass that rejects its values
    (``TrainingArguments`` raises ``ValueError``) is one line."""
    try:
        *parsed, rest = parser.parse_args_into_dataclasses(
            args=argv, return_remaining_strings=True, look_for_args_file=False
        )
    except ValueError as err:
        raise ConfigError(" ".join(str(err).split())) from err
    if rest:
        raise ConfigError(_unknown(parser, rest))
    return tuple(parsed)


def check_file_values(parser: ArgumentParser, values: dict[str, Any], path: str) -> None:
    """Each setting of a ``--config`` file is a flag of ``parser`` and passes that flag's own type and choices, so a
    wrong one ends in one line naming the file and the key (the command line's values are checked by argparse)."""
    actions = {action.dest: action for action in _actions(parser) if f"--{action.dest}" in action.option_strings}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(actions), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--config {path}: unknown setting(s) {unknown}{hint}; see --help for valid names.")
    for key, value in values.items():
        action = actions[key]
        items = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
        for item in items:
            if item is None or isinstance(item, (dict, list)) or action.type is None:
                continue
            try:
                converted = action.type(_as_text(item, action.type))
            except (TypeError, ValueError, argparse.ArgumentTypeError):
                raise ConfigError(
                    f"--config {path}: {key}: {item!r} is not {_type_name(action.type)} (the value of --{key})."
                ) from None
            if action.choices is not None and converted not in action.choices:
                choices = ", ".join(str(choice) for choice in action.choices)
                raise ConfigError(f"--config {path}: {key}: {item!r} is not one of {choices} (the values of --{key}).")


def _item_type(annotation: Any) -> tuple[Any, bool]:
    """``list[X] | None`` -> (X, True); ``X | None`` -> (X, False)."""
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is list:
        return get_args(annotation)[0], True
    return annotation, False


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return parser._actions  # argparse keeps its actions here; it has no public accessor


def _unknown(parser: ArgumentParser, rest: list[str]) -> str:
    flags = [arg for arg in rest if arg.startswith("-")]
    if not flags:
        return f"unexpected argument {rest[0]!r} (see `{parser.prog} --help`)."
    flag = flags[0].split("=", 1)[0]
    options = [option for action in _actions(parser) for option in action.option_strings]
    close = difflib.get_close_matches(flag, options, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown flag {flag}{hint} (see `{parser.prog} --help`)."


def _as_text(value: Any, kind: Any) -> str:
    """A YAML scalar as it would be typed on the command line (argparse converts strings only)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and kind is int and value.is_integer():
        return str(int(value))
    return str(value)


def _type_name(kind: Any) -> str:
    if kind is string_to_bool:
        return "true or false"
    return {int: "a whole number", float: "a number"}.get(kind, f"a valid {getattr(kind, '__name__', 'value')}")
