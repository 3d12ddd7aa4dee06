"""Canonical examples → token sequences for pre-training and SFT (truncation, packing) and the batch collator."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.errors import DataError
from engine.templates import IGNORE_INDEX

logger = logging.getLogger(__name__)


class TokenizedDataset:
    """A list of tokenized rows that the Trainer can index (no Arrow round trip for data this small)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.rows[index]

    @property
    def num_tokens(self) -> int:
        """Real tokens over all rows."""
        return sum(len(row["input_ids"]) for row in self.rows)


def tokenize_sft(examples: list[dict], template: Any, tokenizer: Any, *, cutoff_len: int,
                 train_on_prompt: bool = False, mask_history: bool = False, default_system: str | None = None,
                 enable_thinking: bool | None = True) -> list[dict[str, list[int]]]:
    """Render each conversation with the chat template into input ids and loss labels."""
    from engine.templates import render_conversation

    rows, dropped = [], 0
    for example in examples:
        input_ids, labels = render_conversation(
            template, tokenizer, example["messages"], example.get("system") or default_system, example.get("tools"),
            cutoff_len=cutoff_len, train_on_prompt=train_on_prompt, mask_history=mask_history,
            enable_thinking=enable_thinking)
        if all(label == IGNORE_INDEX for label in labels):
            dropped += 1  # truncation left no reply to learn from
            continue
        rows.append({"input_ids": input_ids, "labels": labels})
    if dropped:
        logger.warning("%d of %d examples had no reply tokens left after cutoff_len=%d and were skipped.",
                       dropped, len(examples), cutoff_len)
    return rows


def tokenize_pt(texts: list[str], tokenizer: Any, *, cutoff_len: int, packing: bool) -> list[dict[str, list[int]]]:
    """Plain text + eos; packed into cutoff_len blocks (LLaMA-Factory's pre-training layout) or truncated."""
    eos = tokenizer.eos_token_id
    encoded = [tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else []) for text in texts]
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    if not packing:
        return [{"input_ids": (bos + ids)[:cutoff_len], "labels": (bos + ids)[:cutoff_len]} for ids in encoded if ids]
    stream = [token for ids in encoded for token in bos + ids]
    blocks = [stream[i:i + cutoff_len] for i in range(0, len(stream), cutoff_len)]
    if len(blocks) > 1 and len(blocks[-1]) < cutoff_len // 4:
        blocks.pop()  # a short tail block would be mostly padding
    return [{"input_ids": block, "labels": list(block)} for block in blocks]


def pack_rows(rows: list[dict[str, list[int]]], cutoff_len: int) -> list[dict[str, list[int]]]:
    """Pack SFT rows into sequences of at most cutoff_len (best fit, longest first).

    Each packed row keeps `position_ids` that restart at every example: with no attention mask, transformers then
    builds a block-diagonal mask, so packed examples never attend to each other.
    """
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    space: list[int] = []
    for index in order:
        length = len(rows[index]["input_ids"])
        best = min((b for b in range(len(bins)) if space[b] >= length), key=lambda b: space[b], default=None)
        if best is None:
            bins.append([index])
            space.append(cutoff_len - length)
        else:
            bins[best].append(index)
            space[best] -= length
    packed = []
    for members in bins:
        input_ids, labels, position_ids = [], [], []
        for index in members:
            row = rows[index]
            input_ids += row["input_ids"]
            # The first token of each example must not be predicted from the previous example's last token.
            labels += [IGNORE_INDEX] + row["labels"][1:]
            position_ids += list(range(len(row["input_ids"])))
        packed.append({"input_ids": input_ids, "labels": labels, "position_ids": position_ids})
    return packed


@dataclass
class SequenceCollator:
    """Pads a batch to its longest row (to a multiple of 8); packed rows get position ids and no attention mask."""

    pad_token_id: int
    pad_to_multiple_of: int = 8

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        packed = "position_ids" in features[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        if packed:
            batch["position_ids"] = []
        else:
            batch["attention_mask"] = []
        for f in features:
            pad = longest - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_token_id] * pad)
            batch["labels"].append(f["labels"] + [IGNORE_INDEX] * pad)
            if packed:  # the padding forms one more (ignored) segment with its own positions
                batch["position_ids"].append(f["position_ids"] + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}


def require_rows(rows: list, names: str) -> None:
    """A dataset that tokenizes to nothing is an error, not a silent zero-step run."""
    if not rows:
        raise DataError("no_rows_after_tokenization", names=names)
