"""UI languages: locale lookup, the browser's preferred language, and relabelling every registered component."""

from __future__ import annotations

from typing import Any

from engine.errors import format_message, load_locale

LANGUAGES: dict[str, str] = {
    "en": "English",
    "zh": "简体中文",
    "zh-TW": "繁體中文",
    "ja": "日本語",
    "ko": "한국어",
    "ru": "Русский",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "pt-BR": "Português (Brasil)",
}
DEFAULT_LANG = "en"


def t(key: str, lang: str = DEFAULT_LANG, **params: Any) -> str:
    """The text of `key` in `lang` (English when missing there)."""
    return format_message(key, lang, **params)


def has_key(key: str, lang: str = DEFAULT_LANG) -> bool:
    """Whether the locale defines `key`."""
    return key in load_locale(lang)


def browser_language(accept_language: str | None) -> str:
    """The first supported language of an Accept-Language header (`zh-TW,zh;q=0.9,en;q=0.8`), else English."""
    if not accept_language:
        return DEFAULT_LANG
    lower = {code.lower(): code for code in LANGUAGES}
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower().replace("_", "-")
        if not tag:
            continue
        if tag in lower:
            return lower[tag]
        if tag in ("zh-hk", "zh-mo", "zh-hant"):
            return "zh-TW"
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("pt"):
            return "pt-BR"
        base = tag.split("-")[0]
        if base in lower:
            return lower[base]
    return DEFAULT_LANG


def choice_pairs(key: str, values: list[Any], lang: str) -> list[tuple[str, Any]]:
    """(label, value) choices whose labels come from `<key>.choices.<value>` when the locale has them."""
    pairs = []
    for value in values:
        choice_key = f"{key}.choices.{value}"
        pairs.append((t(choice_key, lang) if has_key(choice_key) else str(value), value))
    return pairs


PLOT_TITLES = ("x_title", "y_title", "color_title")


def plot_titles(key: str, lang: str = DEFAULT_LANG) -> dict[str, str]:
    """A chart's axis and legend titles (`<key>.x_title`, `.y_title`, `.color_title`) for gr.LinePlot(**...):
    without them the chart shows its frame's column names (step, value, series) in English."""
    return {name: t(f"{key}.{name}", lang) for name in PLOT_TITLES if has_key(f"{key}.{name}")}


def component_update(key: str, kind: str, lang: str, choices: list[Any] | None = None) -> dict[str, Any]:
    """A gr.update(...) payload relabelling one component from its locale key base."""
    import gradio as gr

    update: dict[str, Any] = {}
    if kind == "plot":
        update.update(plot_titles(key, lang))
    if kind in ("button", "markdown", "tab", "accordion", "html"):
        field = "value" if kind in ("button", "markdown", "html") else "label"
        update[field] = t(f"{key}.label", lang)
        return gr.update(**update)
    update["label"] = t(f"{key}.label", lang)
    if has_key(f"{key}.info"):
        update["info"] = t(f"{key}.info", lang)
    if has_key(f"{key}.placeholder"):
        update["placeholder"] = t(f"{key}.placeholder", lang)
    if choices is not None:
        update["choices"] = choice_pairs(key, choices, lang)
    return gr.update(**update)
