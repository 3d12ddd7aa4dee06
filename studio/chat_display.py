"""How a model's reply is shown in a chat (the single chat's and the arena's): HTML as text when asked, its
thinking folded into a collapsed block or hidden."""

from __future__ import annotations

import html
import re

from studio.i18n import t

THINK = re.compile(r"<think>(.*?)(</think>|$)", re.S)


def render_reply(text: str, escape: bool, show_thinking: bool, lang: str) -> str:
    """A reply for display: HTML shown as text (when asked), thinking folded into a collapsed block or hidden."""
    def fold(match: re.Match) -> str:
        if not show_thinking:
            return ""
        inner = html.escape(match.group(1).strip()) if escape else match.group(1).strip()
        return f"<details><summary>{t('chat.msg.thinking', lang)}</summary>\n\n{inner}\n\n</details>\n\n"

    parts = THINK.split(text)
    if len(parts) == 1:
        return html.escape(text) if escape else text
    out, pos = "", 0
    for match in THINK.finditer(text):
        before = text[pos:match.start()]
        out += (html.escape(before) if escape else before) + fold(match)
        pos = match.end()
    rest = text[pos:]
    return out + (html.escape(rest) if escape else rest)
