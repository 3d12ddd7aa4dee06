"""Parity with LLaMA-Factory 0.9.5: every text template lays out the same token ids and trains the same positions.

tests/fixtures/templates/lf_reference.json holds what LLaMA-Factory's own SFT preprocessing and chat engine build for
a few conversations (system prompt, several turns, Chinese and emoji, reasoning, a tool call and its result), made by
scripts/lf_template_reference.py with the tokenizer beside it. LLaMA-Factory itself is not needed here.

Our renderer runs with preserve_thinking=True for training, which is what LLaMA-Factory does when mask_history is off
(it keeps every reply's reasoning); by default we drop reasoning before the latest user message, as the models'
own chat templates do, and as LLaMA-Factory does with mask_history on (docs/templates.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.templates import (
    IGNORE_INDEX,
    TEMPLATES,
    fix_tokenizer,
    get_template,
    render_conversation,
    render_prompt_ids,
)

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "templates"
REFERENCE = json.loads((FIXTURES / "lf_reference.json").read_text(encoding="utf-8"))

# Where we follow the model's official chat template instead of LLaMA-Factory; docs/templates.md has the details.
# (template, conversation) -> reason; "*" stands for every conversation.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("phi_small", "*"): "the official template opens with the bos token; LLaMA-Factory's prefix writes nothing",
    ("granite4", "tools"): "tool results are answered after the usual assistant header (LLaMA-Factory drops a tag)",
    ("glm4_moe", "tools"): "GLM-4.5 tool calls end with </tool_call>, which LLaMA-Factory leaves out",
    ("glm4_5v", "tools"): "GLM-4.5V tool calls end with </tool_call> (as GLM-4.5's), which LLaMA-Factory leaves out",
    ("glm4_7", "tools"): "GLM-4.7 tool calls end with </tool_call>, which LLaMA-Factory leaves out",
    ("aeva", "tools"): "GLM-4.7 tool calls end with </tool_call>, which LLaMA-Factory leaves out",
    ("minimax2", "tools"): "MiniMax-M2 tool calls are wrapped in <minimax:tool_call>, which LLaMA-Factory leaves out",
    ("seed_oss", "tools"): "Seed-OSS tool calls read <function=name>, with no extra bos before them",
}

CASES = [(name, case) for name, entry in REFERENCE["templates"].items() for case in entry["cases"]]


def _exception(name: str, case: str) -> str | None:
    conversation = REFERENCE["templates"][name]["cases"][case]["conversation"]
    return EXCEPTIONS.get((name, "*")) or EXCEPTIONS.get((name, conversation))


@pytest.fixture(scope="module")
def base_tokenizer():
    """The demo tokenizer with a bos and the templates' control tokens, as the reference was made with."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(FIXTURES / REFERENCE["tokenizer"])


def _messages(conversation: str, thought_words: list[str]) -> list[dict[str, str]]:
    messages = []
    for message in REFERENCE["conversations"][conversation]["messages"]:
        content = message["content"]
        if "thought" in message:
            content = thought_words[0] + message["thought"] + thought_words[1] + content
        messages.append({"role": message["role"], "content": content})
    return messages


def _labels(reference: dict) -> list[int]:
    labels = [IGNORE_INDEX] * len(reference["input_ids"])
    for start, end in reference["trained"]:
        labels[start:end] = reference["input_ids"][start:end]
    for position, label in reference.get("relabelled", {}).items():
        labels[int(position)] = label
    return labels


def _render(base_tokenizer, name: str, case: str) -> tuple[list[int], list[int], list[int]]:
    """Our (input_ids, labels, generation prompt ids) for a case of the reference."""
    entry = REFERENCE["templates"][name]
    reference = entry["cases"][case]
    spec = REFERENCE["conversations"][reference["conversation"]]
    tokenizer = copy.deepcopy(base_tokenizer)
    if entry.get("added_tokens"):
        tokenizer.add_special_tokens({"extra_special_tokens": entry["added_tokens"]},
                                     replace_extra_special_tokens=False)
    template = get_template(name)
    fix_tokenizer(template, tokenizer)
    messages = _messages(reference["conversation"], entry["thought_words"])
    thinking, mask_history = reference["enable_thinking"], reference["mask_history"]
    # LLaMA-Factory keeps earlier reasoning unless mask_history is on: that is our preserve_thinking.
    ids, labels = render_conversation(template, tokenizer, messages, spec["system"], spec.get("tools"),
                                      mask_history=mask_history, enable_thinking=thinking,
                                      preserve_thinking=not mask_history)
    prompt = render_prompt_ids(template, tokenizer, messages[:-1], spec["system"], spec.get("tools"),
                               enable_thinking=thinking)
    return ids, labels, prompt


def test_every_text_template_of_llamafactory_is_registered():
    missing = set(REFERENCE["templates"]) - set(TEMPLATES)
    assert not missing, f"LLaMA-Factory templates without a registration: {sorted(missing)}"
    ours_only = set(TEMPLATES) - set(REFERENCE["templates"])
    assert ours_only == {"tokenizer", "baichuan2"}  # LLaMA-Factory 0.9.5 dropped baichuan2
    assert len(REFERENCE["templates"]) >= 80


def test_exceptions_name_real_cases():
    cases = [case for entry in REFERENCE["templates"].values() for case in entry["cases"].values()]
    conversations = {case["conversation"] for case in cases}
    for name, conversation in EXCEPTIONS:
        assert name in REFERENCE["templates"]
        assert conversation == "*" or conversation in conversations


def test_docs_list_every_template_and_exception():
    docs = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    assert not [name for name in TEMPLATES if f"| `{name}` |" not in docs]
    _, _, exceptions = docs.partition("## Where we follow the official template instead of LLaMA-Factory")
    assert all(f"`{name}`" in exceptions.split("\n## ")[0] for name, _ in EXCEPTIONS)


@pytest.mark.parametrize(("name", "case"), CASES)
def test_same_ids_and_trained_positions(base_tokenizer, name, case):
    reference = REFERENCE["templates"][name]["cases"][case]
    ids, labels, prompt = _render(base_tokenizer, name, case)
    expected_prompt = reference["input_ids"][: reference["generation"]["shared"]] + reference["generation"]["tail"]
    same = (ids, labels, prompt) == (reference["input_ids"], _labels(reference), expected_prompt)
    reason = _exception(name, case)
    if reason:
        assert not same, f"{name}/{case} now matches LLaMA-Factory: drop its exception ({reason})"
        return
    tokenizer = base_tokenizer
    assert tokenizer.decode(ids) == tokenizer.decode(reference["input_ids"])
    assert ids == reference["input_ids"]
    assert labels == _labels(reference)
    assert prompt == expected_prompt
