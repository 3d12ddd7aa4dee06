"""Turn a canonical conversation into text, one (prompt, response) pair per turn, exactly as the model sees it.

Training and inference share this: `render_text` joins the pairs, `engine.templates.encode` tokenizes each part on
its own so the loss mask falls exactly on the response. The `tokenizer` pseudo-template is delegated to
`engine.templates.hf_chat`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.templates import hf_chat
from engine.templates.messages import Message, check_messages, parse_tools
from engine.templates.template import Template
from engine.templates.tools import ToolFormat, get_tool_format

# What `{bos}` / `{eos}` become when no tokenizer is given (render_text for display or tests).
DEFAULT_BOS = ""
DEFAULT_EOS = "</s>"

Turn = tuple[str, str]  # (prompt text, response text); the response is "" for a trailing prompt-only turn


def render_text(
    template: Template,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
    tools: str | None = None,
    add_generation_prompt: bool = True,
    enable_thinking: bool | None = None,
    *,
    tokenizer: Any = None,
) -> str:
    """The full prompt text as the model sees it; ends with the assistant header when a reply is due.

    `tokenizer` fills the `{bos}`/`{eos}` of the generic templates (default: "" and "</s>") and is required by the
    `tokenizer` pseudo-template. `add_generation_prompt` only matters when the last message is on the prompt side.
    """
    turns = turn_texts(
        template,
        tokenizer,
        messages,
        system,
        tools,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        training=False,
    )
    return "".join(prompt + response for prompt, response in turns)


def turn_texts(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None,
    tools: str | None,
    *,
    add_generation_prompt: bool,
    enable_thinking: bool | None,
    training: bool,
) -> list[Turn]:
    """The conversation as (prompt, response) text pairs, for either kind of template."""
    checked = check_messages(messages, training=training)
    tool_list = parse_tools(tools)
    if template.from_tokenizer:
        return hf_chat.tokenizer_turns(
            tokenizer,
            checked,
            system,
            tool_list,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
        )
    bos, eos = DEFAULT_BOS, DEFAULT_EOS
    if tokenizer is not None:
        bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    return build_turns(
        template,
        checked,
        system,
        tool_list,
        bos=bos,
        eos=eos,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
    )


def _fill(slot: str, content: str, bos: str, eos: str) -> str:
    # Content goes in last, so a message that happens to contain "{eos}" is left alone.
    return slot.replace("{bos}", bos).replace("{eos}", eos).replace("{content}", content)


def _head_and_system(template: Template, system: str | None, tools: list[dict], bos: str, eos: str) -> tuple[str, str]:
    """The text before the first message, and the system text still to be folded into the first message."""
    system_text = system or template.default_system
    tools_text = get_tool_format(template.tool_format).describe(tools) if tools else ""
    head = _fill(template.prefix, "", bos, eos)
    if tools_text and template.tools_in_system:
        system_text = "\n\n".join(part for part in (system_text, tools_text) if part)
    elif tools_text:
        head += tools_text
    if system_text and not template.system_in_user:
        return head + _fill(template.system, system_text, bos, eos), ""
    return head, system_text


def build_turns(
    template: Template,
    checked: list[Message],
    system: str | None,
    tools: list[dict],
    *,
    bos: str,
    eos: str,
    add_generation_prompt: bool,
    enable_thinking: bool | None,
) -> list[Turn]:
    """Lay out checked messages with a named template; see `Template` for the order of the parts."""
    head, folded_system = _head_and_system(template, system, tools, bos, eos)
    fmt = get_tool_format(template.tool_format)
    generation = _fill(template.generation_prompt, "", bos, eos)
    last_user = max((i for i, m in enumerate(checked) if m.role == "user"), default=-1)
    turns: list[Turn] = []
    for start in range(0, len(checked), 2):
        message = checked[start]
        content = message.content
        if start == 0 and folded_system:
            content = _fill(template.system, folded_system, bos, eos) + content
        slot = template.observation if message.role == "observation" and template.observation else template.user
        prompt = (head if start == 0 else _fill(template.separator, "", bos, eos)) + _fill(slot, content, bos, eos)
        if start + 1 == len(checked):
            if add_generation_prompt:
                prompt += generation + (template.empty_think if enable_thinking is False else "")
            turns.append((prompt, ""))
            break
        final = start + 2 == len(checked)
        # Reasoning families show the model its earlier thoughts only after the latest user query.
        historical = start + 1 < last_user
        to_prompt, reply = _reply_text(template, fmt, checked[start + 1], historical, final, enable_thinking)
        reply_slot = template.function if checked[start + 1].role == "function" and template.function else None
        response = _fill(reply_slot or template.assistant, reply, bos, eos)
        if final and template.efficient_eos:
            response += eos
        turns.append((prompt + generation + to_prompt, response))
    return turns


def _reply_text(
    template: Template, fmt: ToolFormat, reply: Message, historical: bool, final: bool, enable_thinking: bool | None
) -> tuple[str, str]:
    """(text appended to the prompt, reply content) for one assistant or function message."""
    body = fmt.format_calls(list(reply.calls)) if reply.role == "function" else reply.content
    if template.think_words is None:
        return "", body
    has_thought = False
    if reply.role == "assistant":
        strip = historical or (final and enable_thinking is False)
        body, has_thought = split_thought(template.think_words, body, strip=strip)
    if not final or has_thought:
        return "", body
    # A last reply without a thought: the empty block sits in the prompt, so the model learns to answer after it
    # (the "thinking off" mode), unless enable_thinking=True asks it to learn to write the empty block itself.
    if enable_thinking is True:
        return "", template.empty_think + body
    return template.empty_think, body


def split_thought(think_words: tuple[str, str], content: str, *, strip: bool) -> tuple[str, bool]:
    """Normalize a reply's reasoning block to `<think>\\n…\\n</think>\\n\\n`, or drop it; True when one is kept."""
    open_tag, close_tag = think_words
    if close_tag not in content:
        return content, False
    thought = content.split(close_tag)[0].split(open_tag)[-1].strip("\n")
    answer = content.split(close_tag)[-1].lstrip("\n")
    if strip:
        return answer, False
    return f"{open_tag}\n{thought}\n{close_tag}\n\n{answer}", True
