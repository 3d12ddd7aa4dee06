"""UI languages: locale lookup, the browser's preferred language, the page's writing direction, and relabelling
every registered component."""

from __future__ import annotations

import json
from typing import Any

from engine.errors import format_message, load_locale
from engine.paths import resource_dir

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
    "it": "Italiano",
    "tr": "Türkçe",
    "vi": "Tiếng Việt",
    "id": "Bahasa Indonesia",
    "ar": "العربية",
    "hi": "हिन्दी",
}
DEFAULT_LANG = "en"
# Languages written right to left: the whole page is mirrored for them (see PAGE_LANGUAGE_JS and RTL_CSS).
RTL_LANGUAGES = ("ar",)
# Accept-Language tags that name a language by another code: Traditional Chinese by region or script, and
# Indonesian by its old ISO code, which some browsers and Java-based systems still send.
TAG_ALIASES = {"zh-hk": "zh-TW", "zh-mo": "zh-TW", "zh-hant": "zh-TW", "in": "id"}
# A language whose only offered variant stands for every region of it.
PREFIX_FALLBACKS = {"zh": "zh", "pt": "pt-BR"}


def t(key: str, lang: str = DEFAULT_LANG, **params: Any) -> str:
    """The text of `key` in `lang` (English when missing there)."""
    return format_message(key, lang, **params)


def has_key(key: str, lang: str = DEFAULT_LANG) -> bool:
    """Whether the locale defines `key`."""
    return key in load_locale(lang)


def available_languages() -> dict[str, str]:
    """The languages whose locale file ships, code → own name: the picker offers only these, so a language can be
    listed in LANGUAGES before its translation lands (a missing file would show English under its name)."""
    folder = resource_dir("locales")
    return {code: name for code, name in LANGUAGES.items() if (folder / f"{code}.yaml").is_file()}


def browser_language(accept_language: str | None) -> str:
    """The first offered language of an Accept-Language header (`zh-TW,zh;q=0.9,en;q=0.8`), else English."""
    if not accept_language:
        return DEFAULT_LANG
    lower = {code.lower(): code for code in available_languages()}
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower().replace("_", "-")
        base = tag.split("-")[0]
        code = (lower.get(tag) or TAG_ALIASES.get(tag) or TAG_ALIASES.get(base) or PREFIX_FALLBACKS.get(base)
                or lower.get(base))
        if code and code.lower() in lower:
            return code
    return DEFAULT_LANG


# Run in the browser on load and on every language switch: the page says which language it is in (the browser
# wraps lines by that language's rules; the CSS phrase wrapping of Japanese needs it) and, for Arabic, that it
# reads right to left, which mirrors Gradio's rows, labels and alignment.
PAGE_LANGUAGE_JS = f"""(lang) => {{
  const root = document.documentElement;
  root.lang = lang;
  if ({json.dumps(list(RTL_LANGUAGES))}.includes(lang)) root.dir = "rtl"; else root.removeAttribute("dir");
}}"""

# A right-to-left page keeps left to right what is written that way whatever the language: code and YAML editors,
# numbers typed into boxes, sliders (minimum on the left) and charts. Gradio marks every block, text box and Markdown
# dir="ltr" itself, so those are turned back to right to left here; a box's text, each line of the training log and
# each paragraph of a chat message take the direction of their own first letter (a path or an engine line stays left
# to right, Arabic reads right to left). A block's icon buttons move to its left corner, as its label now starts on
# the right. The Arabic locale isolates every {placeholder} (U+2068…U+2069) and JSON example (U+2066…U+2069), so a
# path inside a sentence keeps its order.
RTL_CSS = """
html[dir="rtl"] :where([dir="ltr"], .prose) {direction: rtl;}
html[dir="rtl"] textarea, html[dir="rtl"] input[type="text"], html[dir="rtl"] input:not([type]) {
  unicode-bidi: plaintext; text-align: start;}
html[dir="rtl"] .cm-editor, html[dir="rtl"] pre, html[dir="rtl"] code, html[dir="rtl"] input[type="number"],
html[dir="rtl"] .slider_input_container, html[dir="rtl"] svg, html[dir="rtl"] .vega-embed {
  direction: ltr; text-align: left; unicode-bidi: isolate;}
html[dir="rtl"] #log textarea {direction: ltr;}
html[dir="rtl"] .icon-button-wrapper.top-panel {right: auto; left: var(--block-label-margin);}
html[dir="rtl"] :is([data-testid="bot"], [data-testid="user"]) :is(p, li, h1, h2, h3, h4, blockquote) {
  unicode-bidi: plaintext; text-align: start;}
"""


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
