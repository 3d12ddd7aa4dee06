"""Turn a canonical conversation into text, one (prompt, response) pair per turn, exactly as the model sees it.

Training and inference share this. Each side of a turn is a list of segments that are tokenized one by one (the
prefix, the system block and each message's slot apart, as LLaMA-Factory tokenizes them), so the ids are the same
as there; `render_text` joins them. The `tokenizer` pseudo-template is delegated to `engine.templates.hf_chat`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.templates import hf_chat
from engine.templates.messages import Message, check_messages, parse_tools
from engine.templates.template import Template
from engine.templates.thinking import reply_parts
from engine.templates.tools import get_tool_format

# What `{bos}` / `{eos}` become when no tokenizer is given (render_text for display or tests).
DEFAULT_BOS = ""
DEFAULT_EOS = "</s>"

Turn = tuple[str, str]  # (prompt text, response text); the response is "" for a trailing prompt-only turn
SegmentedTurn = tuple[list[str], list[str]]  # the same, as the pieces that are tokenized one by one
Fill = Callable[..., str]


def render_text(
    template: Template,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
    tools: str | None = None,
    add_generation_prompt: bool = True,
    enable_thinking: bool | None = None,
    *,
    tokenizer: Any = None,
    preserve_thinking: bool = False,
) -> str:
    """The full prompt text as the model sees it; ends with the assistant header when a reply is due.

    `tokenizer` fills the `{bos}`/`{eos}` of the generic templates (default: "" and "</s>") and is required by the
    `tokenizer` pseudo-template. `add_generation_prompt` only matters when the last message is on the prompt side.
    """
    turns = turn_segments(
        template,
        tokenizer,
        messages,
        system,
        tools,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        training=False,
        preserve_thinking=preserve_thinking,
    )
    return "".join(part for prompt, response in turns for part in prompt + response)


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
    preserve_thinking: bool = False,
) -> list[Turn]:
    """The conversation as (prompt, response) text pairs, for either kind of template."""
    turns = turn_segments(
        template,
        tokenizer,
        messages,
        system,
        tools,
        add_generation_prompt=add_generation_prompt,
        enable_thinking=enable_thinking,
        training=training,
        preserve_thinking=preserve_thinking,
    )
    return [("".join(prompt), "".join(response)) for prompt, response in turns]


def turn_segments(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None,
    tools: str | None,
    *,
    add_generation_prompt: bool,
    enable_thinking: bool | None,
    training: bool,
    preserve_thinking: bool = False,
) -> list[SegmentedTurn]:
    """The conversation as (prompt segments, response segments) pairs, for either kind of template."""
    checked = check_messages(messages, training=training)
    tool_list = parse_tools(tools)
    if template.from_tokenizer:
        pairs = hf_chat.tokenizer_turns(
            tokenizer,
            checked,
            system,
            tool_list,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
        )
        return [([prompt], [response] if response else []) for prompt, response in pairs]
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
        preserve_thinking=preserve_thinking,
    )


def _filler(bos: str, eos: str) -> Fill:
    def fill(slot: str, content: str = "") -> str:
        # Content goes in last, so a message that happens to contain "{eos}" is left alone.
        return slot.replace("{bos}", bos).replace("{eos}", eos).replace("{content}", content)

    return fill


def _slot(template: Template, slot: str, content: str, fill: Fill, suffix: str = "") -> list[str]:
    """A filled slot (then `suffix`) as segments: one, or three when the content is tokenized apart."""
    if not template.content_apart:
        return [fill(slot, content) + suffix]
    before, _, after = slot.partition("{content}")
    return [fill(before), content, fill(after) + suffix]


def _head(template: Template, system: str | None, tools: list[dict], fill: Fill) -> tuple[list[str], str]:
    """The segments before the first message, and the system text still to be folded into the first message."""
    system_text = system or template.default_system
    if tools:
        fmt = get_tool_format(template.tool_format)
        tools_text = fmt.describe(tools)
        if not system_text and fmt.lead:
            tools_text = tools_text.removeprefix(fmt.lead)
        system_text += tools_text
    head = [fill(template.prefix)]
    if system_text and not template.system_in_user:
        return head + _slot(template, template.system, system_text, fill), ""
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
    preserve_thinking: bool = False,
) -> list[SegmentedTurn]:
    """Lay out checked messages with a named template; see `Template` for the order of the parts."""
    fill = _filler(bos, eos)
    head, folded_system = _head(template, system, tools, fill)
    fmt = get_tool_format(template.tool_format)
    generation = fill(template.generation_prompt)
    last_user = max((i for i, m in enumerate(checked) if m.role == "user"), default=-1)
    turns: list[SegmentedTurn] = []
    for start in range(0, len(checked), 2):
        message = checked[start]
        content = message.content
        if start == 0 and folded_system:
            content = fill(template.system, folded_system) + content
        slot = template.observation if message.role == "observation" and template.observation else template.user
        prompt = list(head) if start == 0 else [fill(template.separator)]
        if start + 1 == len(checked):
            prompt += _slot(template, slot, content, fill, generation if add_generation_prompt else "")
            if add_generation_prompt and enable_thinking is False:
                prompt.append(template.empty_thought)
            turns.append((_kept(prompt), []))
            break
        prompt += _slot(template, slot, content, fill, generation)
        reply = checked[start + 1]
        final = start + 2 == len(checked)
        body = fmt.format_calls(list(reply.calls)) if reply.role == "function" else reply.content
        to_prompt, opening, body = reply_parts(
            template,
            reply,
            body,
            final=final,
            historical=start + 1 < last_user,
            enable_thinking=enable_thinking,
            preserve_thinking=preserve_thinking,
        )
        reply_slot = template.function if reply.role == "function" and template.function else template.assistant
        response = [opening, *_slot(template, reply_slot, body, fill)]
        if final and template.efficient_eos:
            response.append(eos)
        turns.append((_kept([*prompt, to_prompt]), _kept(response)))
    return turns


def _kept(segments: list[str]) -> list[str]:
    return [segment for segment in segments if segment]
