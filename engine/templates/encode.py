"""Token ids and loss labels for a conversation, and the prompt ids for generation.

Each turn's prompt text and response text are encoded separately (no special tokens added by the tokenizer: the
template writes its own), so the boundary between ignored and trained tokens is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import ConfigError, ModelError
from engine.templates.render import turn_texts
from engine.templates.template import Template

IGNORE_INDEX = -100

# Truncation never cuts either side of the last turn below this many tokens (when it has them).
MIN_PART_TOKENS = 8

EncodedTurn = tuple[list[int], list[int]]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def _encoded_turns(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None,
    tools: str | None,
    enable_thinking: bool | None,
    *,
    training: bool,
) -> list[EncodedTurn]:
    turns = turn_texts(
        template,
        tokenizer,
        messages,
        system,
        tools,
        add_generation_prompt=not training,
        enable_thinking=enable_thinking,
        training=training,
    )
    if training and not turns[-1][1]:
        raise ModelError("chat_template_unaligned")
    return [(_encode(tokenizer, prompt), _encode(tokenizer, response)) for prompt, response in turns]


def render_conversation(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
    tools: str | None = None,
    *,
    cutoff_len: int | None = None,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    enable_thinking: bool | None = None,
) -> tuple[list[int], list[int]]:
    """`(input_ids, labels)` of a training conversation; labels are IGNORE_INDEX where no loss is taken.

    Replies (with their end-of-turn marker) are trained; prompts only with `train_on_prompt`. `mask_history` keeps
    only the last turn in the loss. `cutoff_len` truncates as `truncate_turns` describes. `enable_thinking` (reasoning
    templates): None keeps the last reply's thought and trains a reply without one in "thinking off" mode; False
    drops the thought; True makes the model write the empty thought block itself.
    """
    if cutoff_len is not None and cutoff_len < 1:
        raise ConfigError("invalid_cutoff_len", value=cutoff_len)
    turns = _encoded_turns(template, tokenizer, messages, system, tools, enable_thinking, training=True)
    if cutoff_len is not None:

        def last_turn_alone() -> EncodedTurn:
            # The last exchange as a conversation of its own, so it keeps the prefix and the system prompt.
            alone = _encoded_turns(template, tokenizer, messages[-2:], system, tools, enable_thinking, training=True)
            return alone[-1]

        turns = truncate_turns(turns, cutoff_len, last_turn_alone)
    return _assemble(turns, train_on_prompt=train_on_prompt, mask_history=mask_history)


def render_prompt_ids(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
    tools: str | None = None,
    enable_thinking: bool | None = None,
) -> list[int]:
    """The ids a model generates from: the conversation, then the assistant header when a reply is due."""
    turns = _encoded_turns(template, tokenizer, messages, system, tools, enable_thinking, training=False)
    return [token for prompt, response in turns for token in prompt + response]


def _assemble(turns: list[EncodedTurn], *, train_on_prompt: bool, mask_history: bool) -> tuple[list[int], list[int]]:
    input_ids: list[int] = []
    labels: list[int] = []
    for index, (prompt, response) in enumerate(turns):
        in_loss = not mask_history or index == len(turns) - 1
        input_ids += prompt + response
        labels += prompt if train_on_prompt and in_loss else [IGNORE_INDEX] * len(prompt)
        labels += response if in_loss else [IGNORE_INDEX] * len(response)
    return input_ids, labels


def truncate_turns(
    turns: list[EncodedTurn], cutoff_len: int, last_alone: Callable[[], EncodedTurn]
) -> list[EncodedTurn]:
    """Fit encoded turns into `cutoff_len` tokens, favouring the last turn (the one `mask_history` trains).

    Earlier turns are kept whole, from the first, while they fit beside the whole last turn; the rest of them are
    dropped. If none fits, the last turn is re-rendered alone (`last_alone`) so it keeps the prefix and system text.
    Whatever room is left is shared between the last prompt and response in proportion to their lengths.
    """
    if sum(len(p) + len(r) for p, r in turns) <= cutoff_len:
        return turns
    *earlier, last = turns
    last_len = len(last[0]) + len(last[1])
    kept: list[EncodedTurn] = []
    used = 0
    for prompt, response in earlier:
        if used + len(prompt) + len(response) + last_len > cutoff_len:
            break
        kept.append((prompt, response))
        used += len(prompt) + len(response)
    if earlier and not kept:
        last = last_alone()
    prompt_len, response_len = share_budget(len(last[0]), len(last[1]), cutoff_len - used)
    return kept + [(_cut_middle(last[0], prompt_len), last[1][:response_len])]


def share_budget(prompt_len: int, response_len: int, budget: int) -> tuple[int, int]:
    """How many prompt and response tokens to keep within `budget`: proportional, each side at least a few tokens."""
    total = prompt_len + response_len
    if total <= budget:
        return prompt_len, response_len
    if budget <= 0:
        return 0, 0
    keep_response = budget * response_len // total
    keep_prompt = budget - keep_response
    min_response = min(response_len, MIN_PART_TOKENS, budget // 2)
    min_prompt = min(prompt_len, MIN_PART_TOKENS, budget - min_response)
    if keep_response < min_response:
        keep_response = min_response
        keep_prompt = min(prompt_len, budget - keep_response)
    elif keep_prompt < min_prompt:
        keep_prompt = min_prompt
        keep_response = min(response_len, budget - keep_prompt)
    return keep_prompt, keep_response


def _cut_middle(ids: list[int], keep: int) -> list[int]:
    # A prompt starts with the prefix/system/role header and ends with the assistant header: keep both ends.
    if keep >= len(ids):
        return ids
    head = (keep + 1) // 2
    tail = keep - head
    return ids[:head] + (ids[len(ids) - tail :] if tail else [])
