"""Messages that become HTML: every value a user controls (names, paths, column names, data, errors, model output)
is escaped where it is put into a Markdown or HTML component or a toast, so it shows literally and never runs.

Gradio renders Markdown components and toasts as HTML (sanitized, which removes a script but also eats the text a
user typed), so escaping is what keeps `<img src=x onerror=...>` as a visible file name. The locale texts hold
no HTML of their own (a test keeps it so): their `<placeholder>`s are escaped too, their Markdown kept.
"""

from __future__ import annotations

import html
import re
from typing import Any

from engine.errors import Phrase, StudioError, format_message

# Punctuation that starts Markdown syntax inside a line: `*` emphasis, code, links and images, strike-through.
# `_` is left alone: inside names and paths it is not emphasis, and escaping it would garble copied paths.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*\[\]~])")


def escape_html(value: Any) -> str:
    """`value` as text for HTML (elements and attribute values alike)."""
    return html.escape(str(value), quote=True)


def escape_markdown(value: Any) -> str:
    """`value` as literal text inside a Markdown component: no HTML, no emphasis, links or images."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(str(value), quote=False))


def _escape_params(params: dict[str, Any], escape: Any) -> dict[str, Any]:
    """Message values escaped; numbers stay numbers (for their format specs) and phrases stay locale keys."""
    return {key: value if isinstance(value, (int, float, Phrase)) else escape(value) for key, value in params.items()}


def _escape_template(text: str) -> str:
    """The locale's own `<placeholder>` words escaped; escaped values hold no `<` or `>`, so they are left alone."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def md(key: str, lang: str, /, **params: Any) -> str:
    """The locale text of `key` for a Markdown component, its values shown literally."""
    return _escape_template(format_message(key, lang, **_escape_params(params, escape_markdown)))


def html_text(key: str, lang: str, /, **params: Any) -> str:
    """The locale text of `key` for an HTML component or a toast, its values shown literally."""
    return _escape_template(format_message(key, lang, **_escape_params(params, escape_html)))


def _escaped_error(err: StudioError, escape: Any) -> StudioError:
    """A copy of `err` whose values (and, for bad rows, each row's values) are escaped."""
    safe = type(err).__new__(type(err))
    safe.__dict__.update(err.__dict__)
    safe.params = _escape_params(err.params, escape)
    if isinstance(getattr(err, "problems", None), list):
        safe.problems = [(key, _escape_params(params, escape)) for key, params in err.problems]
    return safe


def md_error(err: StudioError, lang: str) -> str:
    """A StudioError's message for a Markdown component."""
    return _escape_template(_escaped_error(err, escape_markdown).message(lang))


def html_error(err: StudioError, lang: str) -> str:
    """A StudioError's message for an HTML component or a toast."""
    return _escape_template(_escaped_error(err, escape_html).message(lang))
