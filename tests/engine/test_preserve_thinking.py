"""`preserve_thinking` reaches the data pipeline: earlier replies keep their reasoning only when it is on."""

from __future__ import annotations

from pathlib import Path

from engine.data.preprocess import tokenize_sft
from engine.templates import get_template

CONVERSATION = {"messages": [
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "<think>two and two make four</think>4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "<think>three and three make six</think>6"},
]}


def test_earlier_thoughts_are_kept_only_when_asked(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    template = get_template("qwen3")
    texts = {}
    for preserve in (False, True):
        (row,) = tokenize_sft([CONVERSATION], template, tokenizer, cutoff_len=1024, preserve_thinking=preserve)
        texts[preserve] = tokenizer.decode(row["input_ids"])
    assert "three and three make six" in texts[False] and "two and two make four" not in texts[False]
    assert "three and three make six" in texts[True] and "two and two make four" in texts[True]
