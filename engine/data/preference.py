"""Canonical ranking and KTO examples → the datasets TRL's preference trainers read.

A ranking example becomes `{"prompt", "chosen", "rejected"}` (DPO, ORPO, SimPO) or `{"chosen_ids", "rejected_ids"}`
(reward model); a KTO example `{"prompt", "completion", "label"}`. The prompt is the conversation rendered up to and
including the assistant header; a reply is the assistant slot as SFT trains it, with its end-of-turn marker. So the
prompt and reply token ids are exactly what `render_conversation` gives for the conversation answered by that reply,
as long as the header ends on a token boundary (a newline or a special token, as in chatml, llama3, qwen): TRL
tokenizes prompt + reply in one go, so a header ending in a space ("Assistant: ") merges with the reply's first word.
The reward model takes token ids, which are exact in every case.

Long examples are cut to `cutoff_len` the way SFT cuts them (`truncate_turns`): earlier turns go first, then the last
prompt and the longer reply share the room, the other reply getting the same budget. Text that had to be cut is
decoded back from the kept tokens.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.errors import ModelError

logger = logging.getLogger(__name__)

Turn = tuple[str, str]
Ids = list[int]


def _encode(tokenizer: Any, text: str) -> Ids:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def _decode(tokenizer: Any, ids: Ids) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def auto_prefix(tokenizer: Any) -> str:
    """The text of the special tokens the tokenizer puts before any text by itself (e.g. Llama's BOS), or ""."""
    plain = _encode(tokenizer, "a")
    full = list(tokenizer("a")["input_ids"])
    added = len(full) - len(plain)
    if added <= 0 or full[added:] != plain:
        return ""
    return _decode(tokenizer, full[:added])


@dataclass
class Fitted:
    """A prompt and its replies within cutoff_len, as token ids and as text (decoded from the ids when cut)."""

    prompt_ids: Ids
    reply_ids: list[Ids]
    prompt: str
    replies: list[str]


class ReplyRenderer:
    """Renders a prompt (messages ending on the prompt side) answered by each of some replies, as SFT would."""

    def __init__(self, template: Any, tokenizer: Any, *, default_system: str | None,
                 enable_thinking: bool | None, preserve_thinking: bool = False) -> None:
        self.template, self.tokenizer = template, tokenizer
        self.default_system, self.enable_thinking = default_system, enable_thinking
        self.preserve_thinking = preserve_thinking

    def render(self, example: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
               replies: Sequence[Mapping[str, Any]]) -> tuple[list[Turn], str, list[str]]:
        """(earlier turns, the last prompt shared by every reply, each reply's text)."""
        from engine.templates.render import turn_texts

        rendered = []
        for reply in replies:
            turns = turn_texts(self.template, self.tokenizer, [*messages, reply],
                               example.get("system") or self.default_system, example.get("tools"),
                               add_generation_prompt=False, enable_thinking=self.enable_thinking, training=True,
                               preserve_thinking=self.preserve_thinking)
            if not turns[-1][1]:
                raise ModelError("chat_template_unaligned")
            rendered.append(turns)
        # Reasoning templates may put an empty thought block into one reply's prompt and not the other's: what
        # differs belongs to the reply.
        prompts = [turns[-1][0] for turns in rendered]
        shared = os.path.commonprefix(prompts)
        texts = [prompt[len(shared):] + turns[-1][1] for prompt, turns in zip(prompts, rendered, strict=True)]
        return rendered[0][:-1], shared, texts

    def fit(self, example: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
            replies: Sequence[Mapping[str, Any]], cutoff_len: int) -> Fitted:
        """The rendered prompt and replies, cut to cutoff_len tokens as `truncate_turns` cuts SFT conversations."""
        from engine.templates.encode import truncate_turns

        earlier, prompt, texts = self.render(example, messages, replies)
        history = [(_encode(self.tokenizer, p), _encode(self.tokenizer, r)) for p, r in earlier]
        prompt_ids = _encode(self.tokenizer, prompt)
        reply_ids = [_encode(self.tokenizer, text) for text in texts]
        longest = max(range(len(reply_ids)), key=lambda i: len(reply_ids[i]))
        if sum(len(p) + len(r) for p, r in history) + len(prompt_ids) + len(reply_ids[longest]) <= cutoff_len:
            return Fitted([t for p, r in history for t in p + r] + prompt_ids, reply_ids,
                          "".join(p + r for p, r in earlier) + prompt, texts)

        def last_alone() -> tuple[Ids, Ids]:
            # The last exchange as a conversation of its own, so it keeps the prefix and the system prompt.
            _, alone_prompt, alone_texts = self.render(example, messages[-1:], replies)
            return _encode(self.tokenizer, alone_prompt), _encode(self.tokenizer, alone_texts[longest])

        *kept, (cut_prompt, cut_reply) = truncate_turns([*history, (prompt_ids, reply_ids[longest])], cutoff_len,
                                                        last_alone)
        ids = [t for p, r in kept for t in p + r] + cut_prompt
        budget = len(cut_reply)  # a last reply renders the same with or without the earlier turns
        texts = [text if len(reply) <= budget else _decode(self.tokenizer, reply[:budget])
                 for text, reply in zip(texts, reply_ids, strict=True)]
        return Fitted(ids, [reply[:budget] for reply in reply_ids], _decode(self.tokenizer, ids), texts)


def pair_rows(examples: list[dict], renderer: ReplyRenderer, cutoff_len: int, *, text: bool,
              strip_prefix: str = "", media: Any = None) -> list[dict]:
    """Ranking examples as {"prompt", "chosen", "rejected"} texts, or {"chosen_ids", "rejected_ids"} when not `text`.

    With `media` (a media plugin), each example's placeholders are expanded into the model's tokens first and the
    text rows carry the example's media (`"media"`); a row whose media tokens the cut went through is dropped."""
    rows, dropped = [], 0
    for example in examples:
        expected: dict[int, int] = {}
        if media is not None:
            example, expected = _expand_media(example, media)
        replies = [{"role": "assistant", "content": example[key]} for key in ("chosen", "rejected")]
        fitted = renderer.fit(example, example["messages"], replies, cutoff_len)
        chosen, rejected = fitted.reply_ids
        if not chosen or not rejected or any(fitted.prompt_ids.count(t) != n for t, n in expected.items()):
            dropped += 1  # the prompt alone fills cutoff_len (or the cut went through an image)
        elif text:
            row = {"prompt": _strip(fitted.prompt, strip_prefix), "chosen": fitted.replies[0],
                   "rejected": fitted.replies[1]}
            if media is not None:
                row["media"] = {kind: list(example.get(kind) or []) for kind in media.kinds}
            rows.append(row)
        else:
            rows.append({"chosen_ids": fitted.prompt_ids + chosen, "rejected_ids": fitted.prompt_ids + rejected})
    _report_dropped(dropped, len(examples), cutoff_len)
    return rows


def _expand_media(example: dict, plugin: Any) -> tuple[dict, dict[int, int]]:
    """The example with its placeholders expanded into the model's media tokens, and token id → count expected."""
    from engine.data.media import PLACEHOLDERS

    counts = plugin.token_counts(plugin.load({kind: example.get(kind) or [] for kind in plugin.kinds}))
    return ({**example, "messages": plugin.expand(example["messages"], counts, PLACEHOLDERS)},
            plugin.expected_tokens(counts))


def kto_rows(examples: list[dict], renderer: ReplyRenderer, cutoff_len: int, *,
             strip_prefix: str = "") -> list[dict]:
    """KTO examples (conversations ending on a reply, tagged good or bad) as {"prompt", "completion", "label"}."""
    rows, dropped = [], 0
    for example in examples:
        fitted = renderer.fit(example, example["messages"][:-1], example["messages"][-1:], cutoff_len)
        if not fitted.reply_ids[0]:
            dropped += 1
            continue
        rows.append({"prompt": _strip(fitted.prompt, strip_prefix), "completion": fitted.replies[0],
                     "label": bool(example["kto_tag"])})
    _report_dropped(dropped, len(examples), cutoff_len)
    return rows


def _strip(prompt: str, prefix: str) -> str:
    # The trainer tokenizes with the tokenizer's own special tokens: a BOS the template wrote would come twice.
    return prompt[len(prefix):] if prefix and prompt.startswith(prefix) else prompt


def _report_dropped(dropped: int, total: int, cutoff_len: int) -> None:
    if dropped:
        logger.warning("%d of %d examples had no reply tokens left after cutoff_len=%d and were skipped.",
                       dropped, total, cutoff_len)


def build_preference_datasets(config: RunConfig, template: Any, tokenizer: Any, kind: str, *,
                              strip_prefix: str = "", media: Any = None) -> tuple[Any, Any]:
    """Train and eval (None when there is none) `datasets.Dataset`s for a preference stage.

    `kind`: "pairs" (prompt/chosen/rejected texts), "reward" (chosen_ids/rejected_ids) or "kto"
    (prompt/completion/label). `strip_prefix` is removed from the start of prompt texts (see `auto_prefix`).
    `media` (a media plugin, pairs only) expands the placeholders and keeps each row's media (see `pair_rows`).
    """
    from datasets import Dataset

    from engine.data.pipeline import load_split_examples
    from engine.data.preprocess import require_rows

    data = config.data
    renderer = ReplyRenderer(template, tokenizer, default_system=data.default_system,
                             enable_thinking=data.enable_thinking, preserve_thinking=data.preserve_thinking)

    def convert(examples: list[dict]) -> list[dict]:
        if kind == "kto":
            return kto_rows(examples, renderer, data.cutoff_len, strip_prefix=strip_prefix)
        return pair_rows(examples, renderer, data.cutoff_len, text=kind == "pairs", strip_prefix=strip_prefix,
                         media=media)

    train_examples, eval_examples = load_split_examples(config, require_response=True)
    if kind == "kto" and not config.finetuning.disable_shuffling:
        # KTO reads its data in order (each reply's KL partner is its neighbour in the batch): shuffle once here.
        random.Random(config.training.seed).shuffle(train_examples)
    train_rows = convert(train_examples)
    if config.training.do_train:
        require_rows(train_rows, data.dataset or "")
    eval_rows = convert(eval_examples) if eval_examples else []
    logger.info("Training on %d %s examples%s.", len(train_rows), kind,
                f", evaluating on {len(eval_rows)}" if eval_rows else "")
    return Dataset.from_list(train_rows), Dataset.from_list(eval_rows) if eval_rows else None
