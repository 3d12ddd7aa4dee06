"""Token ids and loss labels for a conversation, and the prompt ids for generation.

Each turn's prompt and response are encoded separately, segment by segment (no special tokens added by the
tokenizer: the template writes its own), so the boundary between ignored and trained tokens is exact and the ids are
those LLaMA-Factory builds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.errors import ConfigError, ModelError
from engine.templates.render import SegmentedTurn, turn_segments
from engine.templates.template import Template

IGNORE_INDEX = -100

# Truncation never cuts either side of the last turn below this many tokens (when it has them).
MIN_PART_TOKENS = 8

EncodedTurn = tuple[list[int], list[int]]
# (enable_thinking, preserve_thinking) of reasoning templates.
Thinking = tuple[bool | None, bool]
# (messages, system, tools) of one conversation, as `render_conversation` takes them.
Conversation = tuple[Sequence[Mapping[str, Any]], str | None, str | None]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Each text's ids, as `tokenizer.encode(text, add_special_tokens=False)` gives them, for many texts at once.

    One batch call instead of one call per text (a fast tokenizer then spends its time in Rust, not in Python), and
    a text that occurs several times (a repeated system prompt or reply) is encoded once.
    """
    unique = list(dict.fromkeys(text for text in texts if text))
    if not unique:
        return [[] for _ in texts]
    direct = _rust_batch_encoder(tokenizer)
    if direct is not None:
        encoded = direct(unique)
    else:
        encoded = tokenizer(unique, add_special_tokens=False, return_attention_mask=False,
                            return_token_type_ids=False)["input_ids"]
    table = dict(zip(unique, encoded, strict=True))
    return [list(table[text]) if text else [] for text in texts]


def _rust_batch_encoder(tokenizer: Any) -> Callable[[list[str]], list[list[int]]] | None:
    """The Rust tokenizer's own batch call when it gives exactly what `tokenizer.encode` gives, else None.

    transformers' `TokenizersBackend.encode` switches truncation and padding off, sets whether special tokens are
    split, and calls the Rust `encode_batch`; converting its result back costs a quarter of the time. When the class
    changes none of that and the Rust tokenizer is already set the same way, calling it directly is the same call.
    """
    module = sys.modules.get("transformers.tokenization_utils_tokenizers")
    base = sys.modules.get("transformers.tokenization_utils_base")
    backend_class = getattr(module, "TokenizersBackend", None)
    if backend_class is None or base is None or not isinstance(tokenizer, backend_class):
        return None
    cls = type(tokenizer)
    if cls._encode_plus is not backend_class._encode_plus or cls.encode is not base.PreTrainedTokenizerBase.encode:
        return None
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None or backend.padding is not None:
        return None
    if backend.encode_special_tokens != bool(getattr(tokenizer, "split_special_tokens", False)):
        return None
    encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast skips the char offsets
    return lambda texts: [encoding.ids for encoding in encode_batch(texts, add_special_tokens=False)]


def _join_ids(tokenizer: Any, segments: list[str]) -> list[int]:
    return [token for segment in segments for token in _encode(tokenizer, segment)]


def _encoded_turns(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None,
    tools: str | None,
    thinking: Thinking,
    *,
    training: bool,
) -> list[EncodedTurn]:
    turns = _checked_segments(template, tokenizer, messages, system, tools, thinking, training=training)
    return [(_join_ids(tokenizer, prompt), _join_ids(tokenizer, response)) for prompt, response in turns]


def _checked_segments(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None,
    tools: str | None,
    thinking: Thinking,
    *,
    training: bool,
) -> list[SegmentedTurn]:
    """The (prompt, response) segments of a conversation; a training one must end with a reply the template shows."""
    enable_thinking, preserve_thinking = thinking
    turns = turn_segments(
        template,
        tokenizer,
        messages,
        system,
        tools,
        add_generation_prompt=not training,
        enable_thinking=enable_thinking,
        training=training,
        preserve_thinking=preserve_thinking,
    )
    if training and not "".join(turns[-1][1]):
        raise ModelError("chat_template_unaligned")
    return turns


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
    preserve_thinking: bool = False,
) -> tuple[list[int], list[int]]:
    """`(input_ids, labels)` of a training conversation; labels are IGNORE_INDEX where no loss is taken.

    Replies (with their end-of-turn marker) are trained; prompts only with `train_on_prompt`. `mask_history` keeps
    only the last turn in the loss. `cutoff_len` truncates as `truncate_turns` describes. With an `efficient_eos`
    template, the first prompt token after each trained reply is labelled with eos (the reply's missing end).
    `enable_thinking` (reasoning templates): None keeps the last reply's thought and trains a reply without one in
    "thinking off" mode; False drops the thoughts; True makes the model write the empty thought block itself.
    `preserve_thinking` keeps the thoughts of earlier replies too (see `engine.templates.thinking.reply_parts`).
    """
    if cutoff_len is not None and cutoff_len < 1:
        raise ConfigError("invalid_cutoff_len", value=cutoff_len)
    thinking = (enable_thinking, preserve_thinking)
    turns = _encoded_turns(template, tokenizer, messages, system, tools, thinking, training=True)
    return _finish(template, tokenizer, (messages, system, tools), turns, cutoff_len=cutoff_len,
                   train_on_prompt=train_on_prompt, mask_history=mask_history, thinking=thinking)


def render_conversations(
    template: Template,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    *,
    cutoff_len: int | None = None,
    train_on_prompt: bool = False,
    mask_history: bool = False,
    enable_thinking: bool | None = None,
    preserve_thinking: bool = False,
) -> list[tuple[list[int], list[int]]]:
    """`render_conversation` of each `(messages, system, tools)`, with the same result, faster for many of them.

    Every conversation is laid out as text segments first; then all the segments are encoded in one batch (see
    `encode_texts`), which is where the time went when each text was encoded on its own.
    """
    if cutoff_len is not None and cutoff_len < 1:
        raise ConfigError("invalid_cutoff_len", value=cutoff_len)
    thinking = (enable_thinking, preserve_thinking)
    laid_out = [_checked_segments(template, tokenizer, messages, system, tools, thinking, training=True)
                for messages, system, tools in conversations]
    segments = [segment for turns in laid_out for turn in turns for side in turn for segment in side]
    ids = iter(encode_texts(tokenizer, segments))

    def take(side: list[str]) -> list[int]:
        return [token for _ in side for token in next(ids)]

    results = []
    for conversation, turns in zip(conversations, laid_out, strict=True):
        encoded = [(take(prompt), take(response)) for prompt, response in turns]
        results.append(_finish(template, tokenizer, conversation, encoded, cutoff_len=cutoff_len,
                               train_on_prompt=train_on_prompt, mask_history=mask_history, thinking=thinking))
    return results


def _finish(
    template: Template,
    tokenizer: Any,
    conversation: Conversation,
    turns: list[EncodedTurn],
    *,
    cutoff_len: int | None,
    train_on_prompt: bool,
    mask_history: bool,
    thinking: Thinking,
) -> tuple[list[int], list[int]]:
    """Truncate a conversation's encoded turns to `cutoff_len` and lay out its ids and labels."""
    if cutoff_len is not None:
        messages, system, tools = conversation

        def last_turn_alone() -> EncodedTurn:
            # The last exchange as a conversation of its own, so it keeps the prefix and the system prompt.
            alone = _encoded_turns(template, tokenizer, messages[-2:], system, tools, thinking, training=True)
            return alone[-1]

        turns = truncate_turns(turns, cutoff_len, last_turn_alone)
    eos_label = getattr(tokenizer, "eos_token_id", None) if template.efficient_eos else None
    return _assemble(turns, train_on_prompt=train_on_prompt, mask_history=mask_history, eos_label=eos_label)


def render_prompt_ids(
    template: Template,
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    system: str | None = None,
    tools: str | None = None,
    enable_thinking: bool | None = None,
    *,
    preserve_thinking: bool = False,
) -> list[int]:
    """The ids a model generates from: the conversation, then the assistant header when a reply is due."""
    thinking = (enable_thinking, preserve_thinking)
    turns = _encoded_turns(template, tokenizer, messages, system, tools, thinking, training=False)
    return [token for prompt, response in turns for token in prompt + response]


def _assemble(
    turns: list[EncodedTurn], *, train_on_prompt: bool, mask_history: bool, eos_label: int | None = None
) -> tuple[list[int], list[int]]:
    """Concatenate the turns; `eos_label` (efficient_eos) labels the first prompt token after a trained reply."""
    input_ids: list[int] = []
    labels: list[int] = []
    for index, (prompt, response) in enumerate(turns):
        in_loss = not mask_history or index == len(turns) - 1
        input_ids += prompt + response
        if train_on_prompt and in_loss:
            labels += prompt
        else:
            follows_reply = eos_label is not None and index > 0 and not mask_history and prompt
            labels += ([eos_label] if follows_reply else []) + [IGNORE_INDEX] * (len(prompt) - bool(follows_reply))
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
