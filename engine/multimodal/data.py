"""Training rows with media: placeholders expanded into the model's tokens, the media kept beside the token ids, and
the collator that turns a batch's media into the processor's tensors.

Media rows are not cached or packed: the token count of an image depends on the run's pixel limits and the
processor, and each row must keep its own media in step with its tokens. Rows whose media tokens `cutoff_len`
would cut are skipped (a cut image cannot be fed), and a run where that leaves nothing says how long they are.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.config import RunConfig
from engine.errors import DataError
from engine.multimodal.plugins import prefix_ids, token_inputs
from engine.templates.encode import IGNORE_INDEX

logger = logging.getLogger(__name__)


def _media_of(example: dict, kinds: tuple[str, ...]) -> dict[str, list]:
    return {kind: list(example.get(kind) or []) for kind in kinds}


def tokenize_media_sft(examples: list[dict], template: Any, tokenizer: Any, plugin: Any, config: RunConfig) -> list[dict]:
    """One row per example (`input_ids`, `labels`, `media`), with each placeholder expanded for its item."""
    from engine.data.media import PLACEHOLDERS
    from engine.data.preprocess import tokenize_sft

    data = config.data
    rows, cut, longest = [], 0, 0
    for example in examples:
        media = _media_of(example, plugin.kinds)
        counts = plugin.token_counts(plugin.load(media))
        expanded = {**example, "messages": plugin.expand(example["messages"], counts, PLACEHOLDERS)}
        prefix = prefix_ids(plugin, counts)
        tokenized = tokenize_sft([expanded], template, tokenizer, cutoff_len=data.cutoff_len - len(prefix),
                                 train_on_prompt=data.train_on_prompt, mask_history=data.mask_history,
                                 default_system=data.default_system, enable_thinking=data.enable_thinking,
                                 preserve_thinking=data.preserve_thinking)
        expected = plugin.expected_tokens(counts)
        longest = max(longest, sum(expected.values()))
        if not tokenized:
            cut += 1
            continue
        row = tokenized[0]
        if prefix:  # (PaliGemma's images, before bos; never trained on)
            row = {**row, "input_ids": prefix + row["input_ids"],
                   "labels": [IGNORE_INDEX] * len(prefix) + row["labels"]}
        if any(row["input_ids"].count(token) != count for token, count in expected.items()):
            cut += 1  # cutoff_len went through an image's tokens (or the text itself holds media tokens)
            continue
        rows.append({**row, "media": media})
    if cut:
        logger.warning("%d of %d examples were skipped: their media tokens (up to %d) do not fit cutoff_len=%d.",
                       cut, len(examples), longest, data.cutoff_len)
    if examples and not rows:
        raise DataError("media_rows_cut", cutoff=data.cutoff_len, tokens=longest)
    return rows


def prepare_media_datasets(config: RunConfig, template: Any, tokenizer: Any, plugin: Any) -> tuple[Any, Any]:
    """Train and eval sets of media rows (eval None when there is no eval data)."""
    from engine.data.media import check_media
    from engine.data.pipeline import load_split_examples
    from engine.data.preprocess import require_rows

    train_examples, eval_examples = load_split_examples(config, require_response=True)
    for examples, where in ((train_examples, "dataset"), (eval_examples, "eval_dataset")):
        check_media(examples, modalities=template.modalities, where=where)
    train_rows = tokenize_media_sft(train_examples, template, tokenizer, plugin, config)
    if config.training.do_train:
        require_rows(train_rows, config.data.dataset or "")
    eval_rows = tokenize_media_sft(eval_examples, template, tokenizer, plugin, config) if eval_examples else []
    tokens = sum(len(row["input_ids"]) for row in train_rows)
    logger.info("Training on %d examples with media (%d tokens)%s.", len(train_rows), tokens,
                f", evaluating on {len(eval_rows)}" if eval_rows else "")
    return MediaRows(train_rows), MediaRows(eval_rows) if eval_rows else None


class MediaRows(list):
    """The rows of one split (a list is all the Trainer's sampler and the collator need)."""


@dataclass
class MediaCollator:
    """Pads the token rows (never padding-free: M-RoPE positions are worked out per row from the attention mask)
    and adds the batch's media tensors and the inputs worked out from its tokens (`mm_token_type_ids`, ...)."""

    plugin: Any
    pad_token_id: int
    select_logits: bool = False

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        from engine.data.preprocess import SequenceCollator

        media = [feature["media"] for feature in features]
        tokens = [{key: value for key, value in feature.items() if key != "media"} for feature in features]
        batch = SequenceCollator(pad_token_id=self.pad_token_id, select_logits=self.select_logits)(tokens)
        batch.update(self.plugin.features([self.plugin.load(m) for m in media]))
        batch.update(token_inputs(self.plugin, batch))
        return batch


@dataclass
class MediaPreferenceCollator:
    """TRL's preference collator (chosen rows, then rejected rows) plus the media tensors of each half."""

    base: Any
    plugin: Any

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        media = [feature["media"] for feature in features]
        batch = self.base([{k: v for k, v in feature.items() if k != "media"} for feature in features])
        loaded = [self.plugin.load(m) for m in media]
        batch.update(self.plugin.features(loaded + loaded))  # the same media for the chosen and the rejected half
        batch.update(token_inputs(self.plugin, batch))
        return batch
