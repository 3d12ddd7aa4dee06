"""Widgets built from the engine's config fields: defaults, ranges and choices come from the dataclasses."""

from __future__ import annotations

import math
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


def number_step(hints: dict[str, Any], base: Any) -> float:
    """The arrow-key step of a number box: the field's `step` metadata, 1 for whole numbers, else a tenth of the
    default's size (so one ArrowUp never turns a learning rate of 0.005 into 1)."""
    if hints.get("step"):
        return hints["step"]
    if base is int:
        return 1
    default = hints.get("default")
    if isinstance(default, (int, float)) and default > 0:
        return 10 ** (math.floor(math.log10(default)) - 1)
    return 0.01


def check_number(key_name: str, value: float | None, lang: str) -> str | None:
    """Why a number box's value cannot be used, in `lang`; None when it can. An empty value is what the browser
    sends for text that is not a number ("abc"), so it is reported rather than read as "off"."""
    _, cls, tp = KEYS[key_name]
    hints = field_hints(cls, key_name)
    optional = type(None) in typing.get_args(tp)
    if value is None:
        return t("widget.number.empty_optional" if optional else "widget.number.empty", lang)
    if optional and value == 0:
        return None  # the box's 0 stands for "off"
    low, high = hints.get("min"), hints.get("max")
    if low is not None and (value < low or (hints.get("exclusive_min") and value == low)):
        return t("widget.number.above" if hints.get("exclusive_min") else "widget.number.at_least", lang,
                 limit=_plain(low))
    if high is not None and value > high:
        return t("widget.number.at_most", lang, limit=_plain(high))
    return None


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _wire_number_check(ctx: Context, component: Any, key_name: str) -> None:
    """Show `check_number`'s message under the box when it is left (Gradio's validator marks the box)."""
    import gradio as gr

    lang = ctx.components.get("lang")

    def validate(value: float | None, lang_value: str = ctx.lang) -> list[Any]:
        """(box value, language) → a validation result for each input."""
        problem = check_number(key_name, value, lang_value or ctx.lang)
        return [gr.validate(problem is None, problem or ""), gr.validate(True, "")][:2 if lang else 1]

    inputs = [component, lang] if lang is not None else [component]
    component.blur(lambda *values: None, inputs, None, validator=validate, api_visibility="private",
                   show_progress="hidden")


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
        # minimum/maximum on the box: Gradio would refuse the whole form with a toast that names no field. The
        # bounds are checked when the box is left, with a message under it (`check_number`), and again on Start.
        component = gr.Number(value=0 if default is None else default, precision=0 if base is int else None,
                              step=number_step(hints, base), **common)
        _wire_number_check(ctx, component, key_name)
    else:
        component = gr.Textbox(value="" if default is None else str(default), **common)
    return ctx.add(name, component, key=key, choices=values if values else None)
