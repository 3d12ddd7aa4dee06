"""Canonical examples → token sequences for pre-training and SFT (truncation, packing) and the batch collator."""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any

from engine.data.columns import TokenColumns
from engine.errors import DataError
from engine.templates import IGNORE_INDEX

logger = logging.getLogger(__name__)


class TokenizedDataset:
    """Tokenized rows that the Trainer indexes, kept as compact columns (see `engine.data.columns`).

    Built from a list of row dicts or from `TokenColumns` (what the tokenization cache loads); each item comes back
    as a dict of lists, so collators see plain rows either way.
    """

    def __init__(self, rows: list[dict[str, list[int]]] | TokenColumns) -> None:
        self.columns = rows if isinstance(rows, TokenColumns) else TokenColumns.from_rows(rows)

    def __len__(self) -> int:
        return len(self.columns)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.columns.row(index)

    @property
    def rows(self) -> list[dict[str, list[int]]]:
        """Every row as a dict of lists (a copy)."""
        return self.columns.to_rows()

    @property
    def num_tokens(self) -> int:
        """Real tokens over all rows."""
        return self.columns.num_tokens


def tokenize_sft(examples: list[dict], template: Any, tokenizer: Any, *, cutoff_len: int,
                 train_on_prompt: bool = False, mask_history: bool = False, default_system: str | None = None,
                 enable_thinking: bool | None = True, preserve_thinking: bool = False, batch_size: int = 1000,
                 num_workers: int = 1) -> list[dict[str, list[int]]]:
    """Render each conversation with the chat template into input ids and loss labels.

    Conversations are encoded `batch_size` at a time (one tokenizer call per batch), in `num_workers` processes when
    more than one; the rows are the same either way, in the order of `examples`.
    """
    from engine.data.workers import map_chunks

    options = {"cutoff_len": cutoff_len, "train_on_prompt": train_on_prompt, "mask_history": mask_history,
               "default_system": default_system, "enable_thinking": enable_thinking,
               "preserve_thinking": preserve_thinking}
    parts = map_chunks(_sft_chunk, examples, (template, tokenizer, options), chunk_size=batch_size,
                       workers=num_workers)
    rows = [row for part_rows, _ in parts for row in part_rows]
    dropped = sum(part_dropped for _, part_dropped in parts)
    if dropped:
        logger.warning("%d of %d examples had no reply tokens left after cutoff_len=%d and were skipped.",
                       dropped, len(examples), cutoff_len)
    return rows


def _sft_chunk(examples: list[dict], template: Any, tokenizer: Any,
               options: dict[str, Any]) -> tuple[list[dict[str, list[int]]], int]:
    """`tokenize_sft` of one batch: its rows, and how many examples truncation left without a reply."""
    from engine.templates.encode import render_conversations

    default_system = options["default_system"]
    conversations = [(e["messages"], e.get("system") or default_system, e.get("tools")) for e in examples]
    rows, dropped = [], 0
    for input_ids, labels in render_conversations(
            template, tokenizer, conversations, cutoff_len=options["cutoff_len"],
            train_on_prompt=options["train_on_prompt"], mask_history=options["mask_history"],
            enable_thinking=options["enable_thinking"], preserve_thinking=options["preserve_thinking"]):
        if labels.count(IGNORE_INDEX) == len(labels):
            dropped += 1  # truncation left no reply to learn from
            continue
        rows.append({"input_ids": input_ids, "labels": labels})
    return rows, dropped


def tokenize_pt(texts: list[str], tokenizer: Any, *, cutoff_len: int, packing: bool, batch_size: int = 1000,
                num_workers: int = 1) -> list[dict[str, list[int]]]:
    """Plain text + eos; packed into cutoff_len blocks (LLaMA-Factory's pre-training layout) or truncated.

    Texts are encoded `batch_size` at a time, in `num_workers` processes when more than one.
    """
    from engine.data.workers import map_chunks

    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    parts = map_chunks(_pt_chunk, texts, (tokenizer,), chunk_size=batch_size, workers=num_workers)
    encoded = [ids + eos for part in parts for ids in part]
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    if not packing:
        return [{"input_ids": (bos + ids)[:cutoff_len], "labels": (bos + ids)[:cutoff_len]} for ids in encoded if ids]
    stream = [token for ids in encoded for token in bos + ids]
    blocks = [stream[i:i + cutoff_len] for i in range(0, len(stream), cutoff_len)]
    if len(blocks) > 1 and len(blocks[-1]) < cutoff_len // 4:
        blocks.pop()  # a short tail block would be mostly padding
    return [{"input_ids": block, "labels": list(block)} for block in blocks]


def _pt_chunk(texts: list[str], tokenizer: Any) -> list[list[int]]:
    """`tokenize_pt`'s encoding of one batch of texts."""
    from engine.templates.encode import encode_texts

    return encode_texts(tokenizer, texts)


def pack_rows(rows: list[dict[str, list[int]]], cutoff_len: int) -> list[dict[str, list[int]]]:
    """Pack SFT rows into sequences of at most cutoff_len (best fit decreasing).

    Longest rows go first, each into the fullest packed row that still has room for it (found by bisection in the
    rows sorted by free space, so packing is O(n log n)). Every token is kept; a row longer than cutoff_len (which
    tokenization never makes) gets a packed row of its own.

    Each packed row keeps `position_ids` that restart at every example: with no attention mask, transformers then
    builds a block-diagonal mask (FlashAttention runs varlen), so packed examples never attend to each other.
    """
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (free space, bin) sorted: the best fit is the first with enough space
    for index in order:
        length = len(rows[index]["input_ids"])
        slot = bisect.bisect_left(free, (length, -1))
        if slot == len(free):
            bins.append([index])
            if length < cutoff_len:
                bisect.insort(free, (cutoff_len - length, len(bins) - 1))
            continue
        space, best = free.pop(slot)
        bins[best].append(index)
        if space > length:
            bisect.insort(free, (space - length, best))
    return [_concat_examples([rows[index] for index in members]) for members in bins]


def _concat_examples(rows: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    """One sequence holding `rows` (plain or already packed) back to back, with restarting position ids."""
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for row in rows:
        input_ids += row["input_ids"]
        # The first token of each example must not be predicted from the previous example's last token.
        labels += [IGNORE_INDEX] + row["labels"][1:]
        position_ids += row["position_ids"] if "position_ids" in row else range(len(row["input_ids"]))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}


@dataclass
class SequenceCollator:
    """Turns a list of token rows into a training batch, in one of two layouts.

    Padded (default): rows are padded to the longest (rounded up to `pad_to_multiple_of`); plain rows get an
    attention mask, packed rows (with `position_ids`) get none, so transformers builds a block-diagonal mask.

    `padding_free`: the whole batch becomes one row with restarting `position_ids` and no padding at all, so no
    compute is spent on padding and examples still never attend to each other (the same mechanism as packing).

    `select_logits`: the batch also carries `logits_to_keep` (a boolean mask of the positions whose next token is
    learnt) and `shift_labels` (those next tokens), so the model projects only those positions onto the vocabulary
    and the cross-entropy skips prompt and padding positions. The loss is the same; the model must accept a 2-D
    boolean `logits_to_keep` (transformers' `slice_logits_to_keep`).

    `varlen_kwargs` (with `padding_free`): also the example boundaries FlashAttention's varlen kernels take
    (`cu_seq_lens_q/k`, `max_length_q/k`), so it need not work them out from the position ids in every layer.
    """

    pad_token_id: int
    pad_to_multiple_of: int = 8
    padding_free: bool = False
    select_logits: bool = False
    varlen_kwargs: bool = False

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        batch = self._flatten(features) if self.padding_free else self._pad(features)
        tensors = {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}
        if self.select_logits:
            tensors.update(loss_positions(tensors["labels"]))
        if self.padding_free and self.varlen_kwargs:
            tensors.update(varlen_boundaries(tensors["position_ids"][0]))
        return tensors

    def _flatten(self, features: list[dict[str, list[int]]]) -> dict[str, list[list[int]]]:
        row = _concat_examples(features)
        return {key: [value] for key, value in row.items()}

    def _pad(self, features: list[dict[str, list[int]]]) -> dict[str, list[list[int]]]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        packed = "position_ids" in features[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        batch["position_ids" if packed else "attention_mask"] = []
        for f in features:
            pad = longest - len(f["input_ids"])
            batch["input_ids"].append(f["input_ids"] + [self.pad_token_id] * pad)
            batch["labels"].append(f["labels"] + [IGNORE_INDEX] * pad)
            if packed:  # the padding forms one more (ignored) segment with its own positions
                batch["position_ids"].append(f["position_ids"] + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * len(f["input_ids"]) + [0] * pad)
        return batch


def varlen_boundaries(position_ids: Any) -> dict[str, Any]:
    """FlashAttention's varlen arguments for one flattened row: where each example starts, and the longest one."""
    import torch

    starts = (position_ids == 0).nonzero().flatten()
    if starts.numel() == 0 or starts[0] != 0:
        starts = torch.cat([torch.zeros(1, dtype=starts.dtype), starts])
    bounds = torch.cat([starts, torch.tensor([position_ids.numel()])]).to(torch.int32)
    longest = int(bounds.diff().max())
    return {"cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds, "max_length_q": longest, "max_length_k": longest}


def loss_positions(labels: Any) -> dict[str, Any]:
    """`logits_to_keep` (positions whose next token has a label) and `shift_labels` (those labels) for a batch."""
    import torch

    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    return {"logits_to_keep": keep, "shift_labels": targets[keep]}


def require_rows(rows: list, names: str) -> None:
    """A dataset that tokenizes to nothing is an error, not a silent zero-step run."""
    if not rows:
        raise DataError("no_rows_after_tokenization", names=names)
