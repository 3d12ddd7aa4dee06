"""Config options that change how conversations render: `preserve_thinking` and `tool_format`."""

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


def test_tool_format_replaces_the_templates_own(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    from engine.model.chat_template import load_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert load_template("llama3", str(tiny_model_dir), tokenizer).tool_format == "llama3"
    template = load_template("llama3", str(tiny_model_dir), tokenizer, tool_format="qwen")
    assert template.name == "llama3" and template.tool_format == "qwen"
    call = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    assert template.extract_tool_calls(call)  # qwen's <tool_call> blocks are now what a reply is parsed for


def test_an_unknown_tool_format_is_refused_by_name():
    import pytest

    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.validation import validate_config

    with pytest.raises(ConfigError) as info:
        validate_config(load_config(None, {"dataset": "identity", "tool_format": "yaml"}))
    assert info.value.key == "bad_choice" and "qwen" in info.value.message()


def test_a_multimodal_template_says_what_is_missing():
    import pytest

    from engine.errors import ConfigError
    from engine.templates import get_template
    from engine.templates.template import MULTIMODAL_TEMPLATES, TEMPLATES

    assert not MULTIMODAL_TEMPLATES & TEMPLATES.keys()
    with pytest.raises(ConfigError) as info:
        get_template("qwen3_omni_nothink")
    assert info.value.key == "feature_not_built" and "text template of the same family" in info.value.message()
