"""Reasoning blocks in replies: found, normalized or dropped, and the empty block that stands for "no reasoning".

A reply's reasoning is written between the template's thought words (`<think>\\n` … `\\n</think>\\n\\n` for Qwen 3,
`<seed:think>` … `</seed:think>` for Seed-OSS, …). Whatever whitespace the data has around the thought, the model sees
it laid out exactly as its template writes it.
"""

from __future__ import annotations

from engine.templates.messages import Message
from engine.templates.template import Template

# (empty block at the end of the prompt, empty block opening the response, the reply's text)
ReplyParts = tuple[str, str, str]


def split_thought(thought_words: tuple[str, str], content: str) -> tuple[str | None, str]:
    """(the reasoning, the answer) of a reply; (None, content) when it has no closed reasoning block."""
    open_tag, close_tag = (word.strip() for word in thought_words)
    if close_tag not in content:
        return None, content
    before, _, _ = content.partition(close_tag)
    thought = before.split(open_tag)[-1].strip("\n")
    answer = content.split(close_tag)[-1].lstrip("\n")
    return thought, answer


def shape_thought(thought_words: tuple[str, str], content: str, *, drop: bool) -> tuple[str, bool]:
    """A reply with its reasoning laid out in the template's words, or without it (`drop`); True when one is kept.

    A reply that opens a reasoning block but never closes it is left as it is (and counts as reasoning).
    """
    thought, answer = split_thought(thought_words, content)
    if thought is None:
        return content, thought_words[0].strip() in content
    if drop:
        return answer, False
    return f"{thought_words[0]}{thought}{thought_words[1]}{answer}", True


def reply_parts(
    template: Template,
    reply: Message,
    body: str,
    *,
    final: bool,
    historical: bool,
    enable_thinking: bool | None,
    preserve_thinking: bool,
) -> ReplyParts:
    """Where a reply's reasoning goes: kept, dropped, or replaced by the empty block in the prompt or the response.

    By default a reasoning model is shown its thoughts only after the latest user query (as it is served), and only
    the last reply stands for "no reasoning" with the empty block. `preserve_thinking` keeps every thought and gives
    every reply without one the empty block (LLaMA-Factory's multi-turn training). `enable_thinking=False` drops all
    thoughts; the empty block is then part of the (untrained) prompt, as it is with None. With True the model learns
    to write the empty block itself.
    """
    if template.thought_words is None:
        return "", "", body
    has_thought = False
    if reply.role == "assistant":
        drop = enable_thinking is False or (historical and not preserve_thinking)
        body, has_thought = shape_thought(template.thought_words, body, drop=drop)
    if has_thought or not (final or preserve_thinking):
        return "", "", body
    if enable_thinking is True:
        return "", template.empty_thought, body
    return template.empty_thought, "", body
