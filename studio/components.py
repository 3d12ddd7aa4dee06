"""Widgets built from the engine's config fields: defaults, ranges and choices come from the dataclasses."""

from __future__ import annotations

import typing
from typing import Any

from engine.config import field_hints
from engine.config.loader import KEYS
from studio.context import Context
from studio.i18n import choice_pairs, has_key, t


def _base_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args and typing.get_origin(tp) is not None else tp


def field_default(name: str) -> Any:
    """A config key's default value."""
    _, cls, _ = KEYS[name]
    return field_hints(cls, name)["default"]


def config_widget(ctx: Context, key_name: str, *, name: str | None = None, value: Any = None,
                  widget: str | None = None, choices: list[Any] | None = None, **kwargs: Any) -> Any:
    """A labelled input for config key `key_name` (registered in ctx under `name`, default the key itself)."""
    import gradio as gr

    name = name or key_name
    _, cls, tp = KEYS[key_name]
    hints = field_hints(cls, key_name)
    lang, key = ctx.lang, f"field.{key_name}"
    if value is None and name == key_name and key_name in ctx.initial:
        value = ctx.initial[key_name]
    default = hints["default"] if value is None else value
    label = t(f"{key}.label", lang)
    info = t(f"{key}.info", lang) if has_key(f"{key}.info") else None
    base = _base_type(tp)
    values = choices if choices is not None else hints.get("choices")
    common = {"label": label, "info": info, "elem_id": name, "interactive": True, **kwargs}
    if values is not None and (values or kwargs.get("multiselect") or kwargs.get("allow_custom_value")):
        values = [v for v in values if v is not None] if default is not None else values
        component = gr.Dropdown(choices=choice_pairs(key, values, lang), value=default, **common)
    elif base is bool or widget == "checkbox":
        component = gr.Checkbox(value=bool(default), **common)
    elif widget == "slider" or (base in (int, float) and hints.get("max") is not None and hints.get("min") is not None
                                and widget != "number"):
        limits = {"minimum": hints.get("min") or 0, "maximum": hints.get("max") or 1,
                  "step": hints.get("step") or (1 if base is int else 0.01)}
        limits.update({k: common.pop(k) for k in ("minimum", "maximum", "step") if k in common})
        component = gr.Slider(value=default, **limits, **common)
    elif base in (int, float):
        # Optional numbers (None = off / all) show 0 for "off": the config builder maps 0 back to None. No
        # minimum/maximum here: the browser would refuse silently, while the engine's check says what to change.
        component = gr.Number(value=0 if default is None else default, precision=0 if base is int else None,
                              **common)
    else:
        component = gr.Textbox(value="" if default is None else str(default), **common)
    return ctx.add(name, component, key=key, choices=values if values else None)
