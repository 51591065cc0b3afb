"""Command-line flags derived from the option groups of ``lipsync.options``, and back.

Each options class becomes an argparse parent parser holding one argument group; a command
builds its parser from the parents of the groups it uses (``COMMAND_GROUPS``, the one place that
says which), so a new field in ``lipsync/options.py`` is a new flag of every command that uses its
group. The mapping from a field:

- the flag is ``--field-name``, or ``metadata["flag"]``; the destination is the field's name;
- ``bool``: a switch (``store_true``); a bool whose default is True needs a ``flag`` such as
  ``--no-overlap`` and is ``store_false``;
- ``metadata["choices"]`` (a ``Literal``): those choices;
- ``Box | None`` and ``tuple[int, int, int, int]``: four ints TOP BOTTOM LEFT RIGHT; any other
  tuple of ints (``face_point``): that many ints, named by ``metadata["metavar"]``;
- ``int``, ``float``, ``str`` and their ``| None``: typed values;
- the default is the dataclass default (set on the parser, shown in the help), never written here.

``options_from_args`` turns the parsed namespace back into ``LipSyncOptions`` (unresolved: the
command calls ``resolved()``, the one place where ``--reference`` is applied).
"""

from __future__ import annotations

import argparse
import inspect
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, Field, fields, replace
from typing import Any, Union, get_args, get_origin

from ..options import GROUPS, SETTING_GROUPS, LipSyncOptions, field_types
from ..types import Box, choices

__all__ = [
    "COMMAND_GROUPS",
    "REFERENCE_COMMANDS",
    "flag_of",
    "flags_of",
    "group_from_args",
    "group_parser",
    "option_parents",
    "options_from_args",
    "resolved_options",
]

COMMAND_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("source", "sync", "faces", "model", "composite", "restore", "encode", "run", "cluster"),
    "batch": ("source", "sync", "faces", "model", "composite", "restore", "encode", "run", "cluster"),
    "segment": ("sync", "faces", "model", "composite", "restore", "encode", "run"),
}
"""The option groups each job command takes. ``segment`` has no ``source``: the video keeps its
length and rate. ``cluster`` (where the job runs) is no part of ``LipSyncOptions``: read it with
``group_from_args``."""

REFERENCE_COMMANDS = frozenset({"run", "batch"})
"""Commands with ``--reference`` (the original Wav2Lip's behaviour; applied by ``resolved()``)."""

_BOX_METAVAR = ("TOP", "BOTTOM", "LEFT", "RIGHT")
_METAVARS: dict[type, str | None] = {int: "N", float: "X", str: None}
_REFERENCE_HELP = (
    "behave exactly like the original inference.py: hard box paste, its 5-frame smoothing, loop, and the audio's "
    "last frames dropped (sets --mode, --smoothing and --length-policy)"
)


def flag_of(f: Field[Any]) -> str:
    """The flag of a field: ``metadata["flag"]`` or ``--field-name``."""
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``(T, True)`` for ``T | None``, else ``(tp, False)``."""
    if get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) == 1 and len(inner) < len(get_args(tp)):
            return inner[0], True
    return tp, False


def _is_int_tuple(tp: Any) -> bool:
    return get_origin(tp) is tuple and len(get_args(tp)) > 0 and all(a is int for a in get_args(tp))


def _shown(default: Any) -> str | None:
    """How a default reads in the help; None when there is nothing to show."""
    if default is None or isinstance(default, bool):
        return None
    if isinstance(default, tuple):
        return " ".join(map(str, default))
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def _help(text: str, default: Any) -> str:
    text = text.replace("%", "%%")  # argparse formats help with %
    shown = _shown(default)
    return f"{text} (default: {shown})" if shown is not None else text


def _argument(f: Field[Any], tp: Any) -> tuple[list[str], dict[str, Any]]:
    """The ``add_argument`` call for one field: its flags and keywords."""
    if f.default is MISSING:
        raise TypeError(f"option field {f.name} has no default")
    meta, default = f.metadata, f.default
    kw: dict[str, Any] = {"dest": f.name, "default": default}
    base, optional = _unwrap(tp)
    if base is bool and not optional:
        if default is True and "flag" not in meta:
            raise TypeError(f"option {f.name} defaults to True: give it a flag such as --no-{f.name}")
        kw["action"] = "store_false" if default else "store_true"
        text = meta["help"].replace("%", "%%")
        kw["help"] = f"turn off (on by default): {text}" if default else text
        return [flag_of(f)], kw
    kw["help"] = _help(meta["help"], default)
    if "metavar" in meta:
        kw["metavar"] = meta["metavar"]
    if meta.get("choices") is not None:
        kw["choices"] = choices(meta["choices"])
    elif base is Box:
        kw.update(nargs=4, type=int, metavar=meta.get("metavar", _BOX_METAVAR))
    elif _is_int_tuple(base):
        count = len(get_args(base))
        kw.update(nargs=count, type=int, metavar=meta.get("metavar", _BOX_METAVAR if count == 4 else "N"))
    elif base in (int, float, str):
        kw["type"] = base
        kw.setdefault("metavar", _METAVARS.get(base))
    else:
        raise TypeError(f"option {f.name}: no command-line form for the type {tp!r}")
    return [flag_of(f)], kw


def _title(klass: type) -> str:
    doc = " ".join((inspect.getdoc(klass) or "").split())
    return doc.replace("``", "")


def group_parser(name: str) -> argparse.ArgumentParser:
    """A parent parser (no ``-h``) with one argument group: the fields of ``SETTING_GROUPS[name]``."""
    klass = SETTING_GROUPS[name]
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group(f"{name} options", _title(klass))
    hints = field_types(klass)
    for f in fields(klass):
        flags, kw = _argument(f, hints[f.name])
        group.add_argument(*flags, **kw)
    return parser


def _reference_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    default = next(f.default for f in fields(LipSyncOptions) if f.name == "reference")
    parser.add_argument("--reference", action="store_true", default=default, help=_REFERENCE_HELP)
    return parser


def option_parents(command: str) -> list[argparse.ArgumentParser]:
    """The parent parsers of ``command``: ``--reference`` where it applies, then one per group."""
    parents = [_reference_parser()] if command in REFERENCE_COMMANDS else []
    return parents + [group_parser(name) for name in COMMAND_GROUPS[command]]


def _value(tp: Any, value: Any) -> Any:
    """A parsed value as the field holds it."""
    base, optional = _unwrap(tp)
    if value is None:
        return None
    if base is Box:
        return Box(*value)
    if _is_int_tuple(base):
        return tuple(value)
    if optional and base in (int, float) and value == 0:
        return None  # an optional number's 0 means "not set" (its help says so; node widgets cannot be empty)
    return value


def options_from_args(args: argparse.Namespace, groups: Iterable[str],
                      argv: Sequence[str] | None = None) -> LipSyncOptions:
    """``LipSyncOptions`` from parsed flags: the named groups from ``args``, the others at their
    defaults, ``reference`` from ``--reference`` when the command has it. Not resolved.

    ``argv`` (the command line): ``--face-point`` or ``--face-index`` given without ``--face``
    implies ``--face point`` / ``--face index`` (they would otherwise do nothing)."""
    parts = {name: group_from_args(args, name) for name in groups if name in GROUPS}
    faces = parts.get("faces")
    if faces is not None and argv is not None and not any(a == "--face" or a.startswith("--face=") for a in argv):
        given = {a.split("=", 1)[0] for a in argv}
        implied = "point" if "--face-point" in given else "index" if "--face-index" in given else None
        if implied:
            parts["faces"] = replace(faces, face_choice=implied)
    return LipSyncOptions(**parts, reference=bool(getattr(args, "reference", False)))


def resolved_options(args: argparse.Namespace, groups: Iterable[str], argv: Sequence[str]) -> LipSyncOptions:
    """``options_from_args(...).resolved()``, saying on stderr which flags of the command line
    ``--reference`` overrides (it runs the original's settings: ``LipSyncOptions.resolved``)."""
    options = options_from_args(args, groups, argv)
    resolved = options.resolved()
    given = {a.split("=", 1)[0] for a in argv}
    ignored = []
    for name in GROUPS:
        before, after = getattr(options, name), getattr(resolved, name)
        for f in fields(before):
            value = getattr(before, f.name)
            if value != getattr(after, f.name) and flag_of(f) in given:
                ignored.append(f"{flag_of(f)} {value}")
    if ignored:
        print(f"note: --reference runs the original's settings; ignored: {', '.join(ignored)}", file=sys.stderr)
    return resolved


def group_from_args(args: argparse.Namespace, name: str) -> Any:
    """The options class ``SETTING_GROUPS[name]`` from parsed flags (not checked)."""
    klass = SETTING_GROUPS[name]
    hints = field_types(klass)
    return klass(**{f.name: _value(hints[f.name], getattr(args, f.name)) for f in fields(klass)})


def flags_of(groups: Sequence[str]) -> dict[str, str]:
    """Every field name of ``groups`` → its flag (for messages and tests)."""
    return {f.name: flag_of(f) for name in groups for f in fields(SETTING_GROUPS[name])}
