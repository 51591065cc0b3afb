"""Node widgets from the library's option groups, and the option groups back from the widgets.

One place maps a field of an options class (``lipsync.options``) to its widget(s) and back:

    field                          widget                         value back
    Literal (choices=...)          Combo of the choices           the choice
    bool / int / float             Boolean / Int / Float          the number
    float | None   (fps)           Float, 0 = None                0 -> None
    str | None     (restore)       Combo "none" + the listed      "none" -> None
                                   options (the host's files);
                                   without options a String       "" -> None
    Box | None     (box)           String "top, bottom, ..."      parse_box, "" -> None
    tuple[int, ...] (pads)         one Int per element            the tuple

The name is the field's ``node`` metadata (a tuple of names for a tuple field), else the field
name; the default is the field's default (None as the neutral value above); the tooltip is the
field's ``help`` as a sentence; min / max / step come from the metadata.

A node declares the groups it builds in ``USES`` (a ``Uses``): the fields it deliberately
leaves to others, with the reason, and per widget what differs from the field (a name a saved
workflow already uses, a tooltip that says more for this node, the host's file list of a combo).
``tests/nodes/test_node_options.py`` holds every node to its declaration.

Saved workflows store widget values by position: a node keeps its inputs in their order and
appends settings it lacks as optional inputs (``optional=True``), so old workflows still load.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Literal

from comfy_api.latest import io

from ..lipsync.options import GROUPS, LipSyncOptions, field_types
from ..lipsync.types import Box, choices
from ._common import parse_box

__all__ = [
    "INT_MAX",
    "NONE",
    "Uses",
    "lipsync_options",
    "option_inputs",
    "options_from_inputs",
    "widget_defaults",
    "widget_names",
]

NONE = "none"
"""The combo entry that stands for None (no restorer)."""

INT_MAX = 10_000_000
"""The max of an Int widget whose field has none (ComfyUI's frontend gives an INT without a max
a max of 2048, too few for frame counts)."""

Overrides = Mapping[str, Mapping[str, Any]]
"""Per widget (by the name the field gives it): ``name`` (the input's name on this node),
``tooltip``, ``options`` (a combo's list, or a function that asks the host for it when the
schema is built), ``min``, ``max``, ``step``."""

_OVERRIDE_KEYS = frozenset({"name", "tooltip", "options", "min", "max", "step"})


@dataclass(frozen=True)
class Uses:
    """What a node builds from the option groups.

    ``groups``: the options classes whose fields it offers. ``left``: fields of those groups it
    does not offer (and whole groups of a job it does not offer, by attribute name such as
    ``"model"``), each with the reason. ``widgets``: the per-widget overrides (``Overrides``).
    ``job``: it runs a whole lip-sync job, so every group of ``LipSyncOptions`` is either used or
    left with a reason."""

    groups: tuple[type, ...]
    left: Mapping[str, str] = field(default_factory=dict)
    widgets: Overrides = field(default_factory=dict)
    job: bool = False

    def inputs(self, group: type, only: Sequence[str] | None = None, *, optional: bool = False) -> list[Any]:
        """``option_inputs`` with this node's overrides."""
        return option_inputs(group, only, overrides=self.widgets, optional=optional)


# ---------------------------------------------------------------------------------------------
# fields and their widgets


def _optional_of(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _kind(group: type, f: Field[Any]) -> tuple[str, bool]:
    """The widget kind of a field (combo, bool, int, float, str, box, tuple) and whether None is allowed."""
    hint, nullable = _optional_of(field_types(group)[f.name])
    if f.metadata.get("choices") is not None or typing.get_origin(hint) is Literal:
        return "combo", nullable
    if hint is Box:
        return "box", nullable
    if typing.get_origin(hint) is tuple:
        return "tuple", nullable
    for kind, cls in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if hint is cls:
            return kind, nullable
    raise TypeError(f"{group.__name__}.{f.name}: no widget for the type {hint!r}")


def _own_names(f: Field[Any]) -> tuple[str, ...]:
    """The widget names the field gives itself (``node`` metadata, else the field name)."""
    node = f.metadata.get("node", f.name)
    return tuple(node) if isinstance(node, (tuple, list)) else (node,)


def _override(overrides: Overrides | None, own: str) -> Mapping[str, Any]:
    spec = (overrides or {}).get(own, {})
    unknown = set(spec) - _OVERRIDE_KEYS
    if unknown:
        raise TypeError(f"override of {own!r}: unknown key(s) {', '.join(sorted(unknown))}")
    return spec


def widget_names(group: type, overrides: Overrides | None = None) -> dict[str, tuple[str, ...]]:
    """Field name -> the names of its widget(s) on a node with these overrides."""
    return {
        f.name: tuple(_override(overrides, own).get("name", own) for own in _own_names(f)) for f in fields(group)
    }


def _to_widget(kind: str, value: Any) -> Any:
    """A field value as its widget shows it (None as the neutral value)."""
    if value is None:
        return {"float": 0.0, "combo": NONE, "str": "", "box": ""}.get(kind, value)
    if kind == "box":
        return ", ".join(str(v) for v in value.as_tuple())
    return value


def _is_none_combo(kind: str, nullable: bool, spec: Mapping[str, Any]) -> bool:
    return kind == "str" and nullable and "options" in spec


def widget_defaults(group: type, overrides: Overrides | None = None) -> dict[str, Any]:
    """Widget name -> the widget's default, from the field defaults."""
    out: dict[str, Any] = {}
    for f in fields(group):
        kind, nullable = _kind(group, f)
        default = f.default
        if default is MISSING:
            raise TypeError(f"{group.__name__}.{f.name} has no default")
        own = _own_names(f)
        names = widget_names(group, overrides)[f.name]
        if kind == "tuple":
            out.update(zip(names, default, strict=True))
            continue
        spec = _override(overrides, own[0])
        out[names[0]] = _to_widget("combo" if _is_none_combo(kind, nullable, spec) else kind, default)
    return out


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _widget(group: type, f: Field[Any], own: str, default: Any, optional: bool, spec: Mapping[str, Any]) -> Any:
    kind, nullable = _kind(group, f)
    name = spec.get("name", own)
    tooltip = spec.get("tooltip") or _sentence(f.metadata["help"])
    common: dict[str, Any] = {"optional": optional, "tooltip": tooltip}
    numbers = {k: spec.get(k, f.metadata.get(k)) for k in ("min", "max", "step")}
    listed = spec.get("options")
    listed = listed() if callable(listed) else listed
    if kind == "combo":
        return io.Combo.Input(name, options=list(listed or choices(f.metadata["choices"])), default=default, **common)
    if _is_none_combo(kind, nullable, spec):
        return io.Combo.Input(name, options=[NONE, *listed], default=_to_widget("combo", default), **common)
    if kind == "bool":
        return io.Boolean.Input(name, default=default, **common)
    if kind in ("int", "tuple"):
        numbers["max"] = numbers["max"] if numbers["max"] is not None else INT_MAX
        return io.Int.Input(name, default=default, **{k: v for k, v in numbers.items() if v is not None}, **common)
    if kind == "float":
        value = _to_widget(kind, default)
        return io.Float.Input(name, default=value, **{k: v for k, v in numbers.items() if v is not None}, **common)
    return io.String.Input(name, default=_to_widget(kind, default), **common)


def option_inputs(
    group: type,
    only: Sequence[str] | None = None,
    skip: Sequence[str] = (),
    overrides: Overrides | None = None,
    *,
    optional: bool = False,
) -> list[Any]:
    """The node inputs of the fields of ``group``: all in field order, or those named in ``only``
    in that order (a field name, or one widget of a tuple field such as ``pad_bottom``), less
    ``skip``. ``optional`` for settings appended to an existing node (see the module docstring)."""
    widgets: dict[str, tuple[Field[Any], str, Any]] = {}  # own widget name -> field, name, default
    by_field: dict[str, list[str]] = {}
    for f in fields(group):
        own = _own_names(f)
        defaults = f.default if len(own) > 1 else (f.default,)
        for name, default in zip(own, defaults, strict=True):
            widgets[name] = (f, name, default)
            by_field.setdefault(f.name, []).append(name)
    wanted: list[str] = []
    for name in only if only is not None else list(by_field):
        if name in by_field:
            wanted += by_field[name]
        elif name in widgets:
            wanted.append(name)
        else:
            raise KeyError(f"{group.__name__} has no field or widget {name!r}")
    skipped = {w for s in skip for w in by_field.get(s, [s])}
    out = []
    for name in wanted:
        if name not in skipped:
            f, own, default = widgets[name]
            out.append(_widget(group, f, own, default, optional, _override(overrides, own)))
    return out


# ---------------------------------------------------------------------------------------------
# widgets back to options


def _from_widget(kind: str, nullable: bool, value: Any) -> Any:
    if kind == "combo":
        return None if nullable and value == NONE else str(value)
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        number = float(value)
        return None if nullable and number == 0 else number
    if kind == "box":
        return parse_box(str(value or ""))
    text = str(value or "")
    return None if nullable and text.strip() in ("", NONE) else text


def options_from_inputs(group: type, inputs: Mapping[str, Any], overrides: Overrides | None = None) -> Any:
    """The ``group`` instance the node inputs describe (inputs it does not have: the defaults),
    checked (InputError with the reason). TypeError for an input that is none of its widgets, as
    for a mistyped keyword."""
    values: dict[str, Any] = {}
    names = widget_names(group, overrides)
    _refuse_unknown(inputs, {n for ns in names.values() for n in ns})
    for f in fields(group):
        kind, nullable = _kind(group, f)
        present = [n for n in names[f.name] if n in inputs]
        if not present:
            continue
        if kind == "tuple":
            values[f.name] = tuple(
                int(inputs[n]) if n in inputs else d for n, d in zip(names[f.name], f.default, strict=True)
            )
        else:
            spec = _override(overrides, _own_names(f)[0])
            shown = "combo" if _is_none_combo(kind, nullable, spec) else kind
            values[f.name] = _from_widget(shown, nullable, inputs[present[0]])
    options = group(**values)
    options.check()
    return options


def _refuse_unknown(inputs: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise TypeError(f"unexpected input(s): {', '.join(unknown)}")


def lipsync_options(uses: Uses, inputs: Mapping[str, Any], **settings: Any) -> LipSyncOptions:
    """The job's options from a node's option inputs (``uses``' groups) and ``settings`` by
    field name (what the node fixes itself, e.g. ``models_dir``). TypeError for an input that is
    no widget of those groups."""
    groups: dict[str, Any] = {}
    consumed: set[str] = set()
    for attr, cls in GROUPS.items():
        if cls in uses.groups:
            own = {n for names in widget_names(cls, uses.widgets).values() for n in names}
            groups[attr] = options_from_inputs(cls, {k: v for k, v in inputs.items() if k in own}, uses.widgets)
            consumed |= own
    _refuse_unknown(inputs, consumed)
    return LipSyncOptions(**groups).replace(**settings)
