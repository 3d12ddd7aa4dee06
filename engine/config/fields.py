"""Field declarations with docs and UI hints, and coercion of raw YAML/CLI values to field types."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from engine.errors import ConfigError, Phrase, Setting

MISSING = dataclasses.MISSING


def option(
    default: Any,
    doc: str,
    *,
    choices: list[Any] | None = None,
    min: float | None = None,  # noqa: A002 - mirrors the UI hint's name
    max: float | None = None,  # noqa: A002
    step: float | None = None,
    exclusive_min: bool = False,
    widget: str | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field with a one-line doc and the hints the studio builds its widget from."""
    metadata = {"doc": doc, "choices": choices, "min": min, "max": max, "step": step,
                "exclusive_min": exclusive_min, "widget": widget, "secret": secret}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_hints(cls: type, name: str) -> dict[str, Any]:
    """The doc/choices/min/max/step metadata of one field, plus its default."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
            return {**f.metadata, "default": default}
    raise KeyError(name)


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~", ""}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], nullable
        return tuple(args), nullable
    return tp, False


def coerce_value(key: str, value: Any, tp: Any) -> Any:
    """Turn a YAML or `key=value` value into the field's type, or raise a ConfigError naming the key."""
    base, nullable = _unwrap_optional(tp)
    if isinstance(value, str) and value.strip().lower() in _NONE and nullable:
        return None
    if value is None:
        if nullable:
            return None
        raise ConfigError("value_missing", key=Setting(key), expected=_type_name(base))
    if isinstance(base, tuple):  # e.g. bool | str: keep what YAML gave when it fits one of them
        for candidate in base:
            try:
                return coerce_value(key, value, candidate)
            except ConfigError:
                continue
        raise ConfigError("wrong_type", key=Setting(key), value=value, expected=_type_name(base[-1]))
    return _coerce_plain(key, value, base)


def _coerce_plain(key: str, value: Any, base: Any) -> Any:
    wrong = ConfigError("wrong_type", key=Setting(key), value=value, expected=_type_name(base))
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong
    if base is int:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise wrong from None
            if number.is_integer():
                return int(number)
        raise wrong
    if base is float:
        if isinstance(value, bool):
            raise wrong
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:  # YAML reads `1e-4` (no dot) as a string: accept it as the number it means
                return float(value.strip())
            except ValueError:
                raise wrong from None
        raise wrong
    if base is str:
        if isinstance(value, (list, tuple)):  # `dataset: [a, b]` is the same as `dataset: a,b`
            return ",".join(str(v).strip() for v in value)
        if isinstance(value, (dict, bool)):
            raise wrong
        return str(value)
    if typing.get_origin(base) is dict or base is dict:
        if isinstance(value, dict):
            return value
        raise wrong
    if typing.get_origin(base) is list or base is list:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)):
            return list(value)
        raise wrong
    return value


def _type_name(tp: Any) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "text"}
    if tp in names:
        return Phrase(names[tp])
    origin = typing.get_origin(tp) or tp
    return Phrase({dict: "mapping", list: "list"}.get(origin, "text"))
