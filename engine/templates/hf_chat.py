"""The `tokenizer` pseudo-template: render with the tokenizer's own jinja `chat_template` and find the replies in it.

A jinja template gives one string for the whole conversation, with no marks where replies start. Each reply is
found by rendering two prefixes of the conversation: up to the reply with the generation prompt, and including the
reply. The text in between is the reply as the template writes it (with its end-of-turn marker).
"""

from __future__ import annotations

import logging
from typing import Any

from engine.errors import ModelError
from engine.templates.messages import Message

logger = logging.getLogger(__name__)

Turn = tuple[str, str]

_warned_unaligned = False


def to_hf_messages(checked: list[Message], system: str | None) -> list[dict]:
    """Canonical messages in the shape HF chat templates expect (`system`, `tool_calls`, `tool` roles)."""
    converted: list[dict] = [{"role": "system", "content": system}] if system else []
    for message in checked:
        if message.role == "function":
            calls = [{"type": "function", "function": dict(call)} for call in message.calls]
            converted.append({"role": "assistant", "content": "", "tool_calls": calls})
        elif message.role == "observation":
            converted.append({"role": "tool", "content": message.content})
        else:
            converted.append({"role": message.role, "content": message.content})
    return converted


def apply_template(
    tokenizer: Any, messages: list[dict], tools: list[dict], add_generation_prompt: bool, enable_thinking: bool | None
) -> str:
    """`tokenizer.apply_chat_template` as text, with its failures turned into user-facing errors."""
    if tokenizer is None:
        raise ModelError("tokenizer_template_needs_tokenizer")
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("no_chat_template", model=getattr(tokenizer, "name_or_path", "") or "this model")
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    wrapped = [{"type": "function", "function": tool} for tool in tools] or None
    try:
        return tokenizer.apply_chat_template(
            messages, tools=wrapped, tokenize=False, add_generation_prompt=add_generation_prompt, **extra
        )
    except Exception as exc:  # a model's jinja can fail in any way (raise_exception, missing keys, type errors)
        raise ModelError("chat_template_failed", detail=f"{type(exc).__name__}: {exc}") from exc


def tokenizer_turns(
    tokenizer: Any,
    checked: list[Message],
    system: str | None,
    tools: list[dict],
    *,
    add_generation_prompt: bool,
    enable_thinking: bool | None,
) -> list[Turn]:
    """(prompt, response) text pairs cut out of the tokenizer's own rendering of the conversation.

    A reply that cannot be located (a template that rewrites earlier turns, e.g. by dropping old thoughts) is left
    in the prompt text, so it is not trained on; the caller checks that the last reply was found.
    """
    global _warned_unaligned
    hf_messages = to_hf_messages(checked, system)
    offset = len(hf_messages) - len(checked)

    def render(count: int, generation: bool) -> str:
        return apply_template(tokenizer, hf_messages[:count], tools, generation, enable_thinking)

    full = render(len(hf_messages), add_generation_prompt and checked[-1].is_prompt)
    turns: list[Turn] = []
    cursor = 0
    for index, message in enumerate(checked):
        if message.is_prompt:
            continue
        before = render(offset + index, True)
        upto = render(offset + index + 1, False)
        start = _locate(full, before, upto, cursor)
        if start is None:
            if not _warned_unaligned:
                logger.warning("The chat template renders reply %d differently in context; it is not trained.", index)
                _warned_unaligned = True
            continue
        response = upto[len(before) :]
        turns.append((full[cursor:start], response))
        cursor = start + len(response)
    if cursor < len(full) or not turns:
        turns.append((full[cursor:], ""))
    return turns


def _locate(full: str, before: str, upto: str, cursor: int) -> int | None:
    """Where the reply `upto - before` starts in `full`, searching from `cursor`; None when it is not there."""
    if not upto.startswith(before):
        return None
    response = upto[len(before) :]
    if full.startswith(upto) and len(before) >= cursor:
        return len(before)
    position = full.find(response, cursor)
    return position if position >= 0 and response else None
