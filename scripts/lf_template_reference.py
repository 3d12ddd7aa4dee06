"""Record how LLaMA-Factory 0.9.5 tokenizes our test conversations with each of its text chat templates.

The output, tests/fixtures/templates/lf_reference.json (beside the tokenizer it was made with, lf_tokenizer/), is
what tests/engine/test_templates_lf.py compares the studio's renderer against, without LLaMA-Factory installed.

For every text template (the multimodal ones are left out) and every conversation below, it stores what
LLaMA-Factory's SFT preprocessing builds (multi-turn, train_on_prompt=False, mask_history=False, enable_thinking=True;
for reasoning templates also enable_thinking=False, and mask_history=True, which drops earlier reasoning): the input
ids, the positions that are trained (labels != -100, with the label where it is not the input id), and the prompt ids
its chat engine generates from.

The tokenizer is the offline demo model's (a small byte-level BPE trained on data/), with a bos token and the
templates' control tokens (<|im_start|>, [INST], <start_of_turn>, ...) added as special tokens, as real model
tokenizers have them. Both sides encode the same strings with the same tokenizer, so the ids must agree.

Regenerate (LLaMA-Factory is read from its unpacked source; nothing is installed into the project's venv):

    .venv/bin/python scripts/lf_template_reference.py --lf-src /path/to/llamafactory-0.9.5/src

Packages LLaMA-Factory needs that the venv lacks go into a separate folder put on sys.path (`--extra`, made with
`pip install --target <folder> ...`). Its multimodal module imports torchaudio, which only multimodal templates use:
a stub stands in for it, and the templates of image models (gemma3, llama4, qwen3_5, ...) are run with the base
plugin, which passes text conversations through as theirs do (theirs only ask for a multimodal processor first).
Llama 3's tool prompt carries today's date in LLaMA-Factory; it is pinned to the date our template writes (the official
template's default) so the fixture does not change from day to day.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import importlib
import json
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "templates"
TOKENIZER_DIR = FIXTURES / "lf_tokenizer"
OUTPUT = FIXTURES / "lf_reference.json"

# The demo model's tokenizer at the size the tests' tiny model uses (tests/conftest.py).
TOKENIZER_VOCAB = 1024
BOS = "<s>"
# Multimodal plugins whose templates render text conversations as text templates do (the text layout is what is
# compared; the image side is tested against transformers' processors in tests/engine/test_multimodal_families.py,
# the audio side in tests/engine/test_multimodal_audio.py).
TEXT_PLUGINS = {"BasePlugin", "Gemma3Plugin", "Gemma3nPlugin", "Gemma4Plugin", "Llama4Plugin", "PixtralPlugin",
                "Qwen3VLPlugin", "Qwen2VLPlugin", "LlavaPlugin", "LlavaNextPlugin", "PaliGemmaPlugin", "MllamaPlugin",
                "InternVLPlugin", "GLM4VPlugin",
                "Qwen2AudioPlugin"}
# Multimodal templates of those plugins that are not built yet.
MULTIMODAL = {"intern_s1", "keye_vl", "qwen2_omni", "qwen3_omni", "qwen3_omni_nothink",
              "dots_ocr", "youtu_vl"}
# Control tokens (<|im_start|>, <｜User｜>, <start_of_turn>, [INST], [|user|], <|turn>, ]~b], ...).
CONTROL = re.compile(
    r"<\|[^<>|\s]+\|>|<｜[^<>｜]+｜>|<\|[a-z_]+>|<[a-z_]+\|>|\[/?[A-Za-z_]+\]|</?[A-Za-z_:]+>|\[\|[a-z]+\|\]"
    r"|\]~!?b[\[\]]|\[e~\["
)

SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris or 东京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    }
]
CONVERSATIONS: dict[str, dict[str, Any]] = {
    "multi_turn": {
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": "Hello! Who are you? 😊"},
            {"role": "assistant", "content": "I am a small demo model. 我是一个演示模型。"},
            {"role": "user", "content": "What is 2+2?\n\nAnswer briefly."},
            {"role": "assistant", "content": "2+2 = 4 🎉"},
        ],
    },
    "no_system": {
        "system": None,
        "messages": [
            {"role": "user", "content": "请用一句话介绍北京。"},
            {"role": "assistant", "content": "北京是中国的首都 🏯。\n"},
            {"role": "user", "content": "  And Paris?"},
            {"role": "assistant", "content": " Paris is the capital of France."},
        ],
    },
    # Assistant messages with a "thought" are written with each template's own thought words.
    "thinking": {
        "system": None,
        "messages": [
            {"role": "user", "content": "What is 17 * 3?"},
            {"role": "assistant", "thought": "17 * 3 = 51.", "content": "The answer is 51."},
            {"role": "user", "content": "再加 9 呢？"},
            {"role": "assistant", "thought": "51 + 9 = 60 🙂", "content": "60."},
        ],
    },
    "tools": {
        "system": "You can look up the weather.",
        "tools": json.dumps(TOOLS, ensure_ascii=False),
        "messages": [
            {"role": "user", "content": "What's the weather in 东京?"},
            {"role": "function", "content": json.dumps({"name": "get_weather", "arguments": {"city": "东京",
                                                                                              "unit": "celsius"}},
                                                        ensure_ascii=False)},
            {"role": "observation", "content": json.dumps({"temperature": 21, "sky": "sunny ☀️"}, ensure_ascii=False)},
            {"role": "assistant", "content": "It is 21 °C and sunny in 东京 ☀️."},
        ],
    },
}


def conversation_messages(name: str, thought_words: tuple[str, str]) -> list[dict[str, str]]:
    """A conversation's messages as plain role/content dicts, thoughts written with `thought_words`."""
    messages = []
    for message in CONVERSATIONS[name]["messages"]:
        content = message["content"]
        if "thought" in message:
            content = thought_words[0] + message["thought"] + thought_words[1] + content
        messages.append({"role": message["role"], "content": content})
    return messages


def load_llamafactory(lf_src: Path, extra: Path | None) -> tuple[Any, Any]:
    """LLaMA-Factory's template and supervised-processor modules, imported without its package __init__s."""
    if extra is not None and extra.is_dir():
        sys.path.insert(0, str(extra))
    sys.path.insert(0, str(lf_src))
    import transformers  # noqa: F401  (first, so the stub below is not taken for the real torchaudio)

    for name, folder in (("llamafactory", ""), ("llamafactory.data", "data"),
                         ("llamafactory.data.processor", "data/processor")):
        package = types.ModuleType(name)
        package.__path__ = [str(lf_src / "llamafactory" / folder)]
        sys.modules[name] = package
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    template_module = importlib.import_module("llamafactory.data.template")
    supervised = importlib.import_module("llamafactory.data.processor.supervised")
    tool_utils = importlib.import_module("llamafactory.data.tool_utils")
    sys.path.insert(0, str(ROOT))
    from engine.templates.tools import get_tool_format

    pinned = dt.datetime.strptime(get_tool_format("llama3").date, "%d %b %Y")

    class PinnedDate(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> dt.datetime:
            return pinned

    tool_utils.datetime = PinnedDate
    return template_module, supervised


def text_templates(template_module: Any) -> list[str]:
    """The names of LLaMA-Factory's templates that render text conversations."""
    return [name for name, template in template_module.TEMPLATES.items()
            if type(template.mm_plugin).__name__ in TEXT_PLUGINS and name not in MULTIMODAL]


def control_tokens(template_module: Any, names: list[str], stop_words: bool = True) -> list[str]:
    """Every control token the text templates write (and, with `stop_words`, stop on), to be added to the tokenizer as
    special tokens."""
    found: set[str] = set()
    for name in names:
        template = template_module.TEMPLATES[name]
        formatters = (template.format_prefix, template.format_system, template.format_user,
                      template.format_assistant, template.format_function, template.format_observation)
        texts = [slot for formatter in formatters for slot in formatter.slots if isinstance(slot, str)]
        texts += [*(template.stop_words if stop_words else []), *template.thought_words]
        for text in texts:
            found.update(CONTROL.findall(text))
    return sorted(found)


def build_tokenizer(template_module: Any, names: list[str]) -> None:
    """The demo tokenizer with a bos and the control tokens, saved into TOKENIZER_DIR."""
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from engine.model.demo import build_demo_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_demo_model(Path(tmp) / "demo", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                                  intermediate_size=128, vocab_size=TOKENIZER_VOCAB)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_special_tokens({"bos_token": BOS})
    tokens = [token for token in control_tokens(template_module, names) if token not in tokenizer.get_vocab()]
    tokenizer.add_special_tokens({"extra_special_tokens": tokens}, replace_extra_special_tokens=False)
    tokenizer.chat_template = None
    if TOKENIZER_DIR.exists():
        shutil.rmtree(TOKENIZER_DIR)
    tokenizer.save_pretrained(TOKENIZER_DIR)
    for name in TOKENIZER_DIR.iterdir():
        if name.name not in ("tokenizer.json", "tokenizer_config.json"):
            name.unlink()


def template_tokens(template: Any) -> list[str]:
    """Tokens a template names by token (`{"token": ...}` slots), which must exist before it can render."""
    formatters = (template.format_prefix, template.format_system, template.format_user, template.format_observation)
    return [slot["token"] for formatter in formatters for slot in formatter.slots if isinstance(slot, dict)]


def trained_spans(input_ids: list[int], labels: list[int]) -> tuple[list[list[int]], dict[str, int]]:
    """[start, end) runs of positions with a label, and the positions whose label is not their input id."""
    spans: list[list[int]] = []
    relabelled: dict[str, int] = {}
    for position, (token, label) in enumerate(zip(input_ids, labels, strict=True)):
        if label == -100:
            continue
        if spans and spans[-1][1] == position:
            spans[-1][1] += 1
        else:
            spans.append([position, position + 1])
        if label != token:
            relabelled[str(position)] = label
    return spans, relabelled


def record_case(modules: tuple[Any, Any], name: str, conversation: str, enable_thinking: bool,
                mask_history: bool = False) -> dict[str, Any]:
    """LLaMA-Factory's SFT ids and labels and its generation prompt for one template and conversation."""
    from transformers import AutoTokenizer

    template_module, supervised = modules
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)
    added = template_tokens(template_module.TEMPLATES[name])
    if added:
        tokenizer.add_special_tokens({"extra_special_tokens": added}, replace_extra_special_tokens=False)
    data_args = types.SimpleNamespace(
        template=name, train_on_prompt=False, mask_history=mask_history, cutoff_len=1_000_000, tool_format=None,
        default_system=None, enable_thinking=enable_thinking, preserve_thinking=False,
    )
    template = template_module.get_template_and_fix_tokenizer(tokenizer, data_args)
    # The image plugins (gemma3, llama4, qwen3_5, ...) want a multimodal processor even for text; for messages
    # without image placeholders they pass them through unchanged, as the base plugin does.
    template.mm_plugin = template_module.get_mm_plugin(name="base")
    spec = CONVERSATIONS[conversation]
    messages = conversation_messages(conversation, template.thought_words)
    processor = supervised.SupervisedDatasetProcessor(template=template, tokenizer=tokenizer, processor=None,
                                                      data_args=data_args)
    input_ids, labels = processor._encode_data_example(messages[:-1], messages[-1:], spec["system"],
                                                       spec.get("tools"), [], [], [])
    history = template.mm_plugin.process_messages(copy.deepcopy(messages[:-1]), [], [], [], None)
    prompt_ids, _ = template.encode_oneturn(tokenizer, [*history, {"role": "assistant", "content": ""}],
                                            spec["system"], spec.get("tools"))
    shared = next((i for i, (a, b) in enumerate(zip(prompt_ids, input_ids, strict=False)) if a != b),
                  min(len(prompt_ids), len(input_ids)))
    spans, relabelled = trained_spans(input_ids, labels)
    case = {"conversation": conversation, "enable_thinking": enable_thinking, "mask_history": mask_history,
            "input_ids": input_ids, "trained": spans, "generation": {"shared": shared, "tail": prompt_ids[shared:]}}
    if relabelled:
        case["relabelled"] = relabelled
    return case


def record_template(modules: tuple[Any, Any], name: str) -> dict[str, Any]:
    template = modules[0].TEMPLATES[name]
    reasoning = isinstance(template, modules[0].ReasoningTemplate)
    cases = {conversation: record_case(modules, name, conversation, True) for conversation in CONVERSATIONS}
    if reasoning:
        cases["thinking_off"] = record_case(modules, name, "thinking", False)
        if not template.efficient_eos:  # (with efficient_eos, it also labels eos after the masked replies)
            cases["thinking_mask_history"] = record_case(modules, name, "thinking", True, mask_history=True)
    entry = {"reasoning": reasoning, "thought_words": list(template.thought_words), "cases": cases}
    added = template_tokens(template)
    if added:
        entry["added_tokens"] = added
    return entry


def compact_json(reference: dict[str, Any]) -> str:
    """The reference as JSON with one line per case: a regenerated file diffs case by case, and stays small."""
    def line(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    head = {key: value for key, value in reference.items() if key != "templates"}
    templates = []
    for name, entry in reference["templates"].items():
        fields = [f"  {line(key)}: {line(value)}" for key, value in entry.items() if key != "cases"]
        cases = ",\n".join(f"   {line(case)}: {line(value)}" for case, value in entry["cases"].items())
        fields.append('  "cases": {\n' + cases + "\n  }")
        templates.append(f" {line(name)}: {{\n" + ",\n".join(fields) + "\n }")
    return json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "templates": {\n' + ",\n".join(templates) + "\n }\n}"


def add_templates(modules: tuple[Any, Any], names: list[str]) -> int:
    """Record `names` into the existing reference, tokenized with the existing tokenizer (which must already hold the
    control tokens their conversations are written with; stop words that only end generation need not be there)."""
    from transformers import AutoTokenizer

    unknown = sorted(set(names) - set(text_templates(modules[0])))
    if unknown:
        raise SystemExit(f"not text templates here: {', '.join(unknown)}")
    vocab = AutoTokenizer.from_pretrained(TOKENIZER_DIR).get_vocab()
    missing = sorted(set(control_tokens(modules[0], names, stop_words=False)) - set(vocab))
    if missing:
        raise SystemExit(f"the tokenizer lacks {', '.join(missing)}: regenerate everything (without --only)")
    reference = json.loads(OUTPUT.read_text(encoding="utf-8"))
    reference["templates"].update({name: record_template(modules, name) for name in names})
    OUTPUT.write_text(compact_json(reference) + "\n", encoding="utf-8")
    print(f"{len(names)} templates added -> {OUTPUT.relative_to(ROOT)} ({len(reference['templates'])} in all)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lf-src", type=Path, required=True, help="LLaMA-Factory 0.9.5's src/ folder")
    parser.add_argument("--extra", type=Path, default=None, help="folder of extra packages (pip install --target)")
    parser.add_argument("--only", default=None,
                        help="comma-separated templates to record into the existing reference with the existing "
                             "tokenizer (whose vocabulary follows data/, so a full run re-tokenizes every template)")
    args = parser.parse_args(argv)
    modules = load_llamafactory(args.lf_src.resolve(), args.extra)
    if args.only:
        return add_templates(modules, [name.strip() for name in args.only.split(",") if name.strip()])
    names = text_templates(modules[0])
    build_tokenizer(modules[0], names)
    conversations = {key: {k: v for k, v in spec.items()} for key, spec in CONVERSATIONS.items()}
    reference = {
        "llamafactory": "0.9.5",
        "tokenizer": TOKENIZER_DIR.name,
        "conversations": conversations,
        "templates": {name: record_template(modules, name) for name in names},
    }
    OUTPUT.write_text(compact_json(reference) + "\n", encoding="utf-8")
    print(f"{len(names)} templates -> {OUTPUT.relative_to(ROOT)} ({OUTPUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
