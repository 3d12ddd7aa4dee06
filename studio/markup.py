"""Messages that become HTML: every value a user controls (names, paths, column names, data, errors, model output)
is escaped where it is put into a Markdown or HTML component or a toast, so it shows literally and never runs.

Gradio renders Markdown components and toasts as HTML (sanitized, which removes a script but also eats the text a
user typed), so escaping is what keeps `<img src=x onerror=...>` as a visible file name. The locale texts hold
Markdown but no HTML (a test keeps it so): their own `<placeholder>` words and `_` are escaped too.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from engine.errors import Phrase, Setting, StudioError, format_message

# Punctuation that starts Markdown syntax inside a line: emphasis, code, links and images, strike-through.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]~])")
_CODE_SPAN = re.compile(r"(`[^`]*`)")
_SLOT = "\x00{}\x00"  # stands for an escaped value while the locale's own text is escaped around it


def escape_html(value: Any) -> str:
    """`value` as text for HTML (elements and attribute values alike)."""
    return html.escape(str(value), quote=True)


def escape_markdown(value: Any) -> str:
    """`value` as literal text inside a Markdown component: no HTML, no emphasis, code, links or images."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(str(value), quote=False))


def _markdown_template(text: str) -> str:
    """A locale text made safe for Markdown while keeping its own Markdown: its `<placeholder>` words are shown
    and its `_` stays an underscore (`'_'` is not emphasis); code spans are literal already."""
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = html.escape(parts[i], quote=False).replace("_", "\\_")
    return "".join(parts)


def _html_template(text: str) -> str:
    return html.escape(text, quote=False)


def _fill(produce: Callable[[dict[str, Any]], str], params: dict[str, Any], escape_value: Callable[[Any], str],
          escape_text: Callable[[str], str], lang: str) -> str:
    """`produce(params)` with the locale's text escaped by `escape_text` and each value by `escape_value`.

    Values go in as slots first so the two escapes never apply to each other; numbers go in as they are (for
    their format specs), phrases stay locale keys, and a setting goes in as its label (escaped like a value).
    """
    values: dict[str, str] = {}

    def slot(value: Any) -> str:
        key = _SLOT.format(len(values))
        values[key] = escape_value(value)
        return key

    # A setting is named by its label here, not by its config key as on the command line.
    shown = {k: v.label(lang) if isinstance(v, Setting) else v for k, v in params.items()}
    slotted = {k: v if isinstance(v, (int, float, Phrase)) else slot(v) for k, v in shown.items()}
    text = escape_text(produce(slotted))
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def md(key: str, lang: str, /, **params: Any) -> str:
    """The locale text of `key` for a Markdown component, its values shown literally."""
    return _fill(lambda p: format_message(key, lang, **p), params, escape_markdown, _markdown_template, lang)


def html_text(key: str, lang: str, /, **params: Any) -> str:
    """The locale text of `key` for an HTML component or a toast, its values shown literally."""
    return _fill(lambda p: format_message(key, lang, **p), params, escape_html, _html_template, lang)


def _render_error(err: StudioError, lang: str, escape_value: Callable[[Any], str],
                  escape_text: Callable[[str], str]) -> str:
    """A StudioError's message with its values (and, for bad rows, each row's values) escaped."""
    problems = getattr(err, "problems", None)
    flat = dict(err.params)
    if isinstance(problems, list):
        flat.update({f"\x01{i}\x01{k}": v for i, (_, params) in enumerate(problems) for k, v in params.items()})

    def produce(slotted: dict[str, Any]) -> str:
        copy = type(err).__new__(type(err))
        copy.__dict__.update(err.__dict__)
        copy.params = {k: v for k, v in slotted.items() if not k.startswith("\x01")}
        if isinstance(problems, list):
            copy.problems = [(key, {k: slotted[f"\x01{i}\x01{k}"] for k in params})
                             for i, (key, params) in enumerate(problems)]
        return copy.message(lang)

    return _fill(produce, flat, escape_value, escape_text, lang)


def md_error(err: StudioError, lang: str) -> str:
    """A StudioError's message for a Markdown component."""
    return _render_error(err, lang, escape_markdown, _markdown_template)


def html_error(err: StudioError, lang: str) -> str:
    """A StudioError's message for an HTML component or a toast."""
    return _render_error(err, lang, escape_html, _html_template)


def show_warning(message_html: str, lang: str) -> None:
    """A warning toast in `lang`: the message (already escaped, e.g. from `html_error`) under a translated title
    (Gradio's own title is the English word "Warning")."""
    import gradio as gr

    gr.Warning(message_html, title=format_message("toast.warning", lang))


def show_info(message_html: str, lang: str) -> None:
    """An information toast in `lang`, its title translated (Gradio's own is the English word "Info")."""
    import gradio as gr

    gr.Info(message_html, title=format_message("toast.info", lang))
