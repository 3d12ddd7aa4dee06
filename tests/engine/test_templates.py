"""Chat templates: every family's layout, loss masks, truncation, tools, reasoning, the `tokenizer` template, jinja."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError, DataError, ModelError
from engine.templates import (
    IGNORE_INDEX,
    TEMPLATES,
    fix_tokenizer,
    get_template,
    list_templates,
    register_template,
    render_conversation,
    render_prompt_ids,
    render_text,
)
from engine.templates.jinja import to_jinja

LF_REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "templates" / "lf_reference.json"

# Control tokens of all the registered families, so the tiny tokenizer keeps each one as a single token.
SPECIAL_TOKENS = [
    "<s>", "</s>", "<bos>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|im_sep|>",
    "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
    "<|header_start|>", "<|header_end|>", "<|eot|>", "<|eom|>",
    "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]",
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<start_of_turn>", "<end_of_turn>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|observation|>",
    "[gMASK]", "<sop>", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<reserved_106>", "<reserved_107>", "<BOS_TOKEN>", "<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>",
    "<|SYSTEM_TOKEN|>", "<|USER_TOKEN|>", "<|CHATBOT_TOKEN|>", "<|start_of_role|>", "<|end_of_role|>",
    "<|end_of_text|>",
]  # fmt: skip

SYSTEM = "You are a bot."
CONV = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]

# Hand-written: what each family's model sees for CONV with SYSTEM (no tokenizer: {bos} is "", {eos} is "</s>").
# The other templates are checked token by token against LLaMA-Factory (test_templates_lf.py).
EXPECTED = {
    "default": (
        "System: You are a bot.</s>\nHuman: Hi</s>\nAssistant:Hello!</s>\nHuman: What is 2+2?</s>\nAssistant:4</s>\n"
    ),
    "empty": "You are a bot.HiHello!What is 2+2?4",
    "alpaca": (
        "You are a bot.### Instruction:\nHi\n\n### Response:\nHello!</s>\n\n"
        "### Instruction:\nWhat is 2+2?\n\n### Response:\n4</s>\n\n"
    ),
    "vicuna": "You are a bot.USER: Hi ASSISTANT:Hello!</s>USER: What is 2+2? ASSISTANT:4</s>",
    "chatml": (
        "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
    ),
    "qwen": (
        "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
    ),
    "qwen3": (
        "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n"
    ),
    "yi": (
        "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
    ),
    "intern2": (
        "<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n4<|im_end|>\n"
    ),
    "llama2": "[INST] <<SYS>>\nYou are a bot.\n<</SYS>>\n\nHi [/INST]Hello!</s>[INST] What is 2+2? [/INST]4</s>",
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
    ),
    "llama4": (
        "<|header_start|>system<|header_end|>\n\nYou are a bot.<|eot|>"
        "<|header_start|>user<|header_end|>\n\nHi<|eot|><|header_start|>assistant<|header_end|>\n\nHello!<|eot|>"
        "<|header_start|>user<|header_end|>\n\nWhat is 2+2?<|eot|><|header_start|>assistant<|header_end|>\n\n4<|eot|>"
    ),
    "mistral": "[INST] You are a bot.\n\nHi[/INST] Hello!</s>[INST] What is 2+2?[/INST] 4</s>",
    "zephyr": (
        "<|system|>\nYou are a bot.</s><|user|>\nHi</s><|assistant|>\nHello!</s>"
        "<|user|>\nWhat is 2+2?</s><|assistant|>\n4</s>"
    ),
    "gemma": (
        "<start_of_turn>user\nYou are a bot.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
    ),
    "phi": (
        "<|system|>\nYou are a bot.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
        "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n"
    ),
    "phi4": (
        "<|im_start|>system<|im_sep|>You are a bot.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|>"
        "<|im_start|>assistant<|im_sep|>Hello!<|im_end|><|im_start|>user<|im_sep|>What is 2+2?<|im_end|>"
        "<|im_start|>assistant<|im_sep|>4<|im_end|>"
    ),
    "glm4": "[gMASK]<sop><|system|>\nYou are a bot.<|user|>\nHi<|assistant|>\nHello!<|user|>\nWhat is 2+2?<|assistant|>\n4</s>",
    "deepseek": "You are a bot.\n\nUser: Hi\n\nAssistant:Hello!</s>User: What is 2+2?\n\nAssistant:4</s>",
    "deepseek3": "You are a bot.<｜User｜>Hi<｜Assistant｜>Hello!</s><｜User｜>What is 2+2?<｜Assistant｜>4</s>",
    "baichuan2": "You are a bot.<reserved_106>Hi<reserved_107>Hello!<reserved_106>What is 2+2?<reserved_107>4</s>",
    "cohere": (
        "<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>You are a bot.<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
        "Hello!</s><|START_OF_TURN_TOKEN|><|USER_TOKEN|>What is 2+2?<|END_OF_TURN_TOKEN|>"
        "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>4</s>"
    ),
    "falcon": "You are a bot.User: Hi\nFalcon:Hello!\nUser: What is 2+2?\nFalcon:4\n</s>",
    "starchat": (
        "<|system|>\nYou are a bot.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>Hello!<|end|>\n"
        "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>4<|end|>\n"
    ),
    "granite3": (
        "<|start_of_role|>system<|end_of_role|>You are a bot.<|end_of_text|>\n"
        "<|start_of_role|>user<|end_of_role|>Hi<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>"
        "Hello!<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>What is 2+2?<|end_of_text|>\n"
        "<|start_of_role|>assistant<|end_of_role|>4<|end_of_text|>\n"
    ),
}

NAMED = [name for name in list_templates() if not TEMPLATES[name].from_tokenizer]

# A hand-written ChatML jinja, as a model repository would ship it (every turn ends with "<|im_end|>\n").
CHATML_JINJA = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _corpus() -> list[str]:
    words = (
        "the a bot cat dog user assistant answer question what is hello hi weather city paris tool call function "
        "result you are helpful four two plus degrees it system human instruction response think add"
    ).split()
    return [
        f"{words[i % len(words)]} {words[i * 7 % len(words)]} {words[i * 13 % len(words)]} {i}." for i in range(400)
    ]


@pytest.fixture(scope="session")
def tokenizer():
    """A tiny byte-level BPE (vocab ~500) wrapped as a transformers fast tokenizer, no chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>")


@pytest.fixture()
def chatml_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = CHATML_JINJA
    return tok


def _label_spans(tokenizer, ids: list[int], labels: list[int]) -> list[str]:
    """The decoded runs of trained tokens (an efficient_eos template's eos labels on prompt tokens left out)."""
    assert len(ids) == len(labels)
    spans, current = [], []
    for token, label in zip(ids, labels, strict=True):
        if label == IGNORE_INDEX or label != token:
            assert label in (IGNORE_INDEX, tokenizer.eos_token_id)
            if current:
                spans.append(current)
            current = []
        else:
            current.append(token)
    if current:
        spans.append(current)
    return [tokenizer.decode(span) for span in spans]


# --- the registry ---


def test_every_named_template_has_a_hand_written_expectation_or_a_reference():
    assert len(list_templates()) >= 80
    reference = json.loads((LF_REFERENCE).read_text(encoding="utf-8"))["templates"]
    assert set(EXPECTED) <= set(NAMED)
    assert set(NAMED) <= set(EXPECTED) | set(reference)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_two_turn_rendering(name):
    assert render_text(get_template(name), CONV, system=SYSTEM, add_generation_prompt=False) == EXPECTED[name]


def test_unknown_template_names_the_known_ones():
    with pytest.raises(ConfigError) as info:
        get_template("foo")
    assert info.value.key == "unknown_template"
    message = str(info.value)
    assert "'foo'" in message and "chatml" in message and "llama3" in message and "`tokenizer`" in message


def test_duplicate_registration_raises():
    with pytest.raises(ValueError):
        register_template("chatml")


def test_import_is_light():
    code = "import sys, engine.templates; assert not {'torch', 'transformers'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- prompts for generation ---


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        ("chatml", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
        ("llama3", "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("gemma", "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"),
        ("default", "</s>\nHuman: What is 2+2?</s>\nAssistant:"),
        ("mistral", "Hello!</s>[INST] What is 2+2?[/INST]"),
    ],
)  # fmt: skip
def test_generation_prompt(name, tail):
    template = get_template(name)
    text = render_text(template, CONV[:3], system=SYSTEM)
    assert text.endswith(tail)
    assert text == render_text(template, CONV[:3], system=SYSTEM, add_generation_prompt=False) + (
        template.generation_prompt.replace("{eos}", "</s>")
    )


def test_default_system_is_used_when_none_given():
    text = render_text(get_template("qwen"), CONV[:1])
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_prompt_ids_match_the_text(tokenizer):
    template = get_template("llama3")
    ids = render_prompt_ids(template, tokenizer, CONV[:3], system=SYSTEM)
    assert tokenizer.decode(ids) == render_text(template, CONV[:3], system=SYSTEM, tokenizer=tokenizer)
    assert ids[0] == tokenizer.bos_token_id  # Llama 3's tokenizer has <|begin_of_text|> as its bos


# --- masks ---


@pytest.mark.parametrize(
    ("name", "replies"),
    [
        ("chatml", ["Hello!<|im_end|>\n", "4<|im_end|>\n"]),
        ("llama3", ["Hello!<|eot_id|>", "4<|eot_id|>"]),
        ("default", ["Hello!</s>\n", "4</s>\n"]),
        ("llama2", ["Hello!</s>", "4</s>"]),
        ("glm4", ["\nHello!", "\n4</s>"]),
    ],
)
def test_labels_cover_exactly_the_replies(tokenizer, name, replies):
    ids, labels = render_conversation(get_template(name), tokenizer, CONV, system=SYSTEM)
    assert _label_spans(tokenizer, ids, labels) == replies
    assert tokenizer.decode(ids) == render_text(get_template(name), CONV, system=SYSTEM, tokenizer=tokenizer)


@pytest.mark.parametrize("name", NAMED)
def test_tokens_decode_to_the_rendered_text(tokenizer, name):
    template = get_template(name)
    ids, labels = render_conversation(template, tokenizer, CONV, system=SYSTEM)
    assert tokenizer.decode(ids) == render_text(template, CONV, system=SYSTEM, tokenizer=tokenizer)
    spans = _label_spans(tokenizer, ids, labels)
    assert len(spans) == 2 and "4" in spans[1] and "Hello!" in spans[0]


def test_train_on_prompt_keeps_every_token(tokenizer):
    ids, labels = render_conversation(get_template("chatml"), tokenizer, CONV, system=SYSTEM, train_on_prompt=True)
    assert labels == ids


def test_mask_history_keeps_only_the_last_reply(tokenizer):
    ids, labels = render_conversation(get_template("chatml"), tokenizer, CONV, system=SYSTEM, mask_history=True)
    assert _label_spans(tokenizer, ids, labels) == ["4<|im_end|>\n"]
    ids, labels = render_conversation(
        get_template("chatml"), tokenizer, CONV, system=SYSTEM, mask_history=True, train_on_prompt=True
    )
    assert tokenizer.decode([t for t, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX]) == (
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
    )


def test_efficient_eos_trains_the_end_of_every_reply(tokenizer):
    # GLM replies carry no end marker: eos is the label where the next prompt starts, and closes the last reply.
    ids, labels = render_conversation(get_template("glm4"), tokenizer, CONV, system=SYSTEM)
    eos = tokenizer.eos_token_id
    relabelled = [i for i, (t, lab) in enumerate(zip(ids, labels, strict=True)) if lab not in (IGNORE_INDEX, t)]
    assert len(relabelled) == 1 and labels[relabelled[0]] == eos
    assert tokenizer.decode(ids[relabelled[0] :]).startswith("<|user|>")
    assert ids[-1] == labels[-1] == eos
    _, labels = render_conversation(get_template("glm4"), tokenizer, CONV, system=SYSTEM, mask_history=True)
    assert eos not in labels[: len(labels) - 1]


# --- truncation ---

LONG = [
    {"role": "user", "content": "what is the weather in paris " * 6},
    {"role": "assistant", "content": "it is helpful and the weather is four degrees " * 6},
    {"role": "user", "content": "and the city two " * 4},
    {"role": "assistant", "content": "the city answer is two plus two " * 5},
    {"role": "user", "content": "hello bot, what is two plus two? " * 5},
    {"role": "assistant", "content": "two plus two is four, said the helpful assistant. " * 8},
]


@pytest.mark.parametrize("cutoff", [1, 5, 16, 40, 80, 150, 250, 400, 10_000])
@pytest.mark.parametrize("name", ["chatml", "llama3", "qwen3"])
def test_truncation_never_exceeds_the_limit(tokenizer, name, cutoff):
    full_ids, _ = render_conversation(get_template(name), tokenizer, LONG, system=SYSTEM)
    ids, labels = render_conversation(get_template(name), tokenizer, LONG, system=SYSTEM, cutoff_len=cutoff)
    assert len(ids) == len(labels) <= cutoff
    assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels, strict=True))
    if cutoff >= len(full_ids):
        assert len(ids) == len(full_ids)
    elif cutoff >= 16:
        assert sum(label != IGNORE_INDEX for label in labels) >= 8  # the last reply keeps a share


def test_truncation_keeps_whole_earlier_turns_and_the_last_turn(tokenizer):
    template = get_template("chatml")

    def turn_lengths(messages, system):
        ids, _ = render_conversation(template, tokenizer, messages, system=system)
        return len(ids)

    first = turn_lengths(LONG[:2], SYSTEM)
    two = turn_lengths(LONG[:4], SYSTEM)
    full_ids, full_labels = render_conversation(template, tokenizer, LONG, system=SYSTEM)
    last = len(full_ids) - two
    ids, labels = render_conversation(template, tokenizer, LONG, system=SYSTEM, cutoff_len=first + last)
    assert ids == full_ids[:first] + full_ids[two:]
    assert labels == full_labels[:first] + full_labels[two:]


def test_truncation_of_a_single_long_turn_shares_the_room(tokenizer):
    template = get_template("llama3")
    full_ids, full_labels = render_conversation(template, tokenizer, LONG[4:], system=SYSTEM)
    ids, labels = render_conversation(template, tokenizer, LONG[4:], system=SYSTEM, cutoff_len=60)
    assert len(ids) == 60
    trained = sum(label != IGNORE_INDEX for label in labels)
    full_trained = sum(label != IGNORE_INDEX for label in full_labels)
    assert abs(trained - 60 * full_trained / len(full_ids)) <= 1
    assert ids[0] == tokenizer.bos_token_id  # the prompt keeps its start...
    assert tokenizer.decode(ids[: len(ids) - trained]).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_truncation_rerenders_the_last_turn_with_the_system_prompt(tokenizer):
    template = get_template("chatml")
    ids, labels = render_conversation(template, tokenizer, LONG, system=SYSTEM, cutoff_len=120)
    text = tokenizer.decode(ids)
    assert text.startswith("<|im_start|>system\nYou are a bot.<|im_end|>\n<|im_start|>user\nhello bot")
    assert len(ids) <= 120


def test_invalid_cutoff_len():
    with pytest.raises(ConfigError) as info:
        render_conversation(get_template("chatml"), object(), CONV, cutoff_len=0)
    assert info.value.key == "invalid_cutoff_len"


# --- conversation checks ---


@pytest.mark.parametrize(
    ("messages", "key"),
    [
        ([], "empty_conversation"),
        ([{"role": "assistant", "content": "x"}], "misordered_messages"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "misordered_messages"),
        ([{"role": "system", "content": "s"}, {"role": "user", "content": "a"}], "unknown_message_role"),
        ([{"role": "user", "content": "a"}, {"role": "function", "content": "not json"}], "invalid_function_call"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
         "conversation_ends_with_prompt"),
    ],
)  # fmt: skip
def test_bad_conversations_are_rejected(tokenizer, messages, key):
    with pytest.raises(DataError) as info:
        render_conversation(get_template("chatml"), tokenizer, messages)
    assert info.value.key == key
    assert "error." not in str(info.value)  # the message comes from the locale file


def test_misordered_message_says_where():
    with pytest.raises(DataError) as info:
        render_text(
            get_template("chatml"), [{"role": "user", "content": "a"}, {"role": "observation", "content": "b"}]
        )
    assert "Message 2" in str(info.value) and "'observation'" in str(info.value)


# --- tools ---

TOOLS = json.dumps(
    [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
)
TOOL_CONV = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "function", "content": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
    {"role": "observation", "content": '{"temp": 20}'},
    {"role": "assistant", "content": "It is 20 degrees."},
]
TOOL_SCHEMA = '{"type": "object", "properties": {"city": {"type": "string"}}}'


def test_qwen_tool_rendering():
    expected = (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
        "You may call one or more functions to assist with the user query.\n\nYou are provided with function "
        "signatures within <tools></tools> XML tags:\n<tools>\n"
        '{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.", '
        f'"parameters": {TOOL_SCHEMA}}}}}\n</tools>\n\nFor each function call, return a json object with function '
        "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n'
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temp": 20}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\nIt is 20 degrees.<|im_end|>\n"
    )
    assert render_text(get_template("qwen"), TOOL_CONV, tools=TOOLS) == expected


def test_tool_text_without_a_system_prompt_has_no_leading_blank_lines():
    text = render_text(get_template("qwen3"), TOOL_CONV, tools=TOOLS)
    assert text.startswith("<|im_start|>system\n# Tools\n\nYou may call one or more functions")
    with_system = render_text(get_template("qwen3"), TOOL_CONV, system=SYSTEM, tools=TOOLS)
    assert with_system.startswith("<|im_start|>system\nYou are a bot.\n\n# Tools\n\n")


def test_llama3_tool_rendering():
    expected = (
        "<|start_header_id|>system<|end_header_id|>\n\nYou are a bot."
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "You have access to the following functions. To call a function, please respond with JSON for a function "
        'call. Respond in the format {"name": function name, "parameters": dictionary of argument name and its '
        'value}. Do not use variables.\n\n{\n    "type": "function",\n    "function": {\n'
        '        "name": "get_weather",\n        "description": "Weather of a city.",\n'
        '        "parameters": {\n            "type": "object",\n            "properties": {\n'
        '                "city": {\n                    "type": "string"\n                }\n            }\n'
        "        }\n    }\n}\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWeather in Paris?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
        '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>'
        '<|start_header_id|>ipython<|end_header_id|>\n\n{"temp": 20}<|eot_id|>'
        "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 20 degrees.<|eot_id|>"
    )
    assert render_text(get_template("llama3"), TOOL_CONV, system=SYSTEM, tools=TOOLS) == expected


def test_default_tool_rendering():
    expected = (
        "System: You are a bot.You have access to the following tools:\n> Tool Name: get_weather\n"
        "Tool Description: Weather of a city.\nTool Args:\n  - city (string): \n\n"
        "Use the following format if using a tool:\n```\nAction: tool name (one of [get_weather])\n"
        "Action Input: the input to the tool, in a JSON format representing the kwargs "
        '(e.g. ```{"input": "hello world", "num_beams": 5}```)\n```\n</s>\n'
        "Human: Weather in Paris?</s>\n"
        'Assistant:Action: get_weather\nAction Input: {"city": "Paris"}</s>\n'
        'Human: {"temp": 20}</s>\nAssistant:It is 20 degrees.</s>\n'
    )
    assert render_text(get_template("default"), TOOL_CONV, system=SYSTEM, tools=TOOLS) == expected


def test_mistral_tool_rendering():
    text = render_text(get_template("mistral"), TOOL_CONV, tools=TOOLS)
    assert text.startswith('[INST] [AVAILABLE_TOOLS] [{"type": "function", "function": {"name": "get_weather"')
    assert '[/AVAILABLE_TOOLS]\n\nWeather in Paris?[/INST][TOOL_CALLS] [{"name": "get_weather", ' in text
    assert text.endswith('</s>[TOOL_RESULTS] {"content": {"temp": 20}}[/TOOL_RESULTS] It is 20 degrees.</s>')


def test_tool_call_reply_is_trained(tokenizer):
    ids, labels = render_conversation(get_template("qwen"), tokenizer, TOOL_CONV, tools=TOOLS)
    assert _label_spans(tokenizer, ids, labels) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n',
        "It is 20 degrees.<|im_end|>\n",
    ]


CALLS = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}, {"name": "now", "arguments": {}}]


def _reply_of(template, messages) -> str:
    """The text the model writes for the last message: the rendering minus the prompt, end marker dropped."""
    prompt = render_text(template, messages[:-1])
    reply = render_text(template, messages)[len(prompt) :]
    for stop in [*template.stop_words, "</s>"]:
        reply = reply.split(stop)[0]
    return reply


@pytest.mark.parametrize(
    ("name", "count"),
    [("default", 1), ("default", 2), ("qwen", 1), ("qwen", 2), ("qwen3", 2), ("llama3", 1), ("llama3", 2),
     ("mistral", 1), ("mistral", 2), ("glm4", 1), ("phi4_mini", 2), ("bailing_v2", 2), ("minimax1", 2),
     ("qwen3_5", 1), ("qwen3_5", 2), ("glm4_moe", 2), ("glm4_7", 2), ("seed_oss", 2), ("minimax2", 2),
     ("lfm2", 1), ("lfm2", 2), ("gemma4", 1), ("gemma4", 2)],
)  # fmt: skip
def test_extract_tool_calls_round_trip(name, count):
    template = get_template(name)
    conv = [{"role": "user", "content": "x"}, {"role": "function", "content": json.dumps(CALLS[:count])}]
    assert template.extract_tool_calls(_reply_of(template, conv)) == CALLS[:count]
    assert template.extract_tool_calls("It is sunny in Paris.") is None


def test_glm4_refuses_parallel_calls():
    conv = [{"role": "user", "content": "x"}, {"role": "function", "content": json.dumps(CALLS)}]
    with pytest.raises(DataError) as info:
        render_text(get_template("glm4"), conv)
    assert info.value.key == "parallel_tool_calls_unsupported"


def test_tokenizer_template_reads_back_known_tool_formats():
    template = get_template("tokenizer")
    hermes = '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'
    assert template.extract_tool_calls(hermes) == [{"name": "now", "arguments": {}}]
    assert template.extract_tool_calls('[TOOL_CALLS] [{"name": "now", "arguments": {}}]') == [
        {"name": "now", "arguments": {}}
    ]
    assert template.extract_tool_calls("It is sunny.") is None


def test_extract_tool_calls_after_a_thought():
    reply = '<think>\nI need the weather.\n</think>\n\n<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'
    assert get_template("qwen3").extract_tool_calls(reply) == [{"name": "now", "arguments": {}}]


# --- reasoning (qwen3) ---

THINK_CONV = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "<think>greet</think>Hello!"},
    {"role": "user", "content": "2+2?"},
    {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4"},
]


def test_qwen3_drops_old_thoughts_and_keeps_the_last():
    assert render_text(get_template("qwen3"), THINK_CONV) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n"
    )


def test_preserve_thinking_keeps_every_thought_and_marks_replies_without_one():
    template = get_template("qwen3")
    text = render_text(template, THINK_CONV, preserve_thinking=True)
    assert "<|im_start|>assistant\n<think>\ngreet\n</think>\n\nHello!<|im_end|>" in text
    plain = [THINK_CONV[0], {"role": "assistant", "content": "Hello!"}, *THINK_CONV[2:]]
    text = render_text(template, plain, preserve_thinking=True)
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>" in text
    # Without it, an earlier reply shows neither its thought nor an empty block (as Qwen 3 is served).
    assert "<|im_start|>assistant\nHello!<|im_end|>" in render_text(template, plain)


@pytest.mark.parametrize(
    ("name", "tail", "empty"),
    [("seed_oss", "assistant\n<seed:think>add</seed:think>4</s>", "<seed:think></seed:think>"),
     ("glm4_7", "<|assistant|>\n<think>add</think>4</s>", "</think>"),
     ("gpt_oss", "<|start|>assistant<|channel|>analysis<|message|>add<|end|><|start|>assistant<|channel|>final"
                 "<|message|>4</s>",
      "<|channel|>analysis<|message|><|end|><|start|>assistant<|channel|>final<|message|>"),
     ("gemma4", "<|turn>model\n<|channel>thought\nadd<channel|>4<turn|>\n", "<|channel>thought\n<channel|>")],
)  # fmt: skip
def test_reasoning_is_written_in_each_family_s_words(name, tail, empty):
    template = get_template(name)
    open_tag, close_tag = (word.strip() for word in template.thought_words)
    messy = [*THINK_CONV[:3], {"role": "assistant", "content": f"{open_tag}\n\nadd\n{close_tag}\n4"}]
    assert render_text(template, messy, add_generation_prompt=False).endswith(tail)
    assert template.empty_thought == empty
    assert render_text(template, THINK_CONV[:3], enable_thinking=False).endswith(empty)


def test_qwen3_generation_with_thinking_on_and_off():
    template = get_template("qwen3")
    on = render_text(template, THINK_CONV[:3])
    off = render_text(template, THINK_CONV[:3], enable_thinking=False)
    assert on.endswith("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n")
    assert off == on + "<think>\n\n</think>\n\n"
    assert "greet" not in on


def test_qwen3_masks(tokenizer):
    template = get_template("qwen3")
    ids, labels = render_conversation(template, tokenizer, THINK_CONV)
    assert _label_spans(tokenizer, ids, labels) == [
        "Hello!<|im_end|>\n", "<think>\nadd\n</think>\n\n4<|im_end|>\n"
    ]
    # A reply without a thought trains "thinking off": the empty block is part of the (masked) prompt...
    plain = THINK_CONV[:3] + [{"role": "assistant", "content": "4"}]
    ids, labels = render_conversation(template, tokenizer, plain)
    assert _label_spans(tokenizer, ids, labels)[-1] == "4<|im_end|>\n"
    assert tokenizer.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>\n")
    # ...unless the model must learn to write the empty block itself.
    ids, labels = render_conversation(template, tokenizer, plain, enable_thinking=True)
    assert _label_spans(tokenizer, ids, labels)[-1] == "<think>\n\n</think>\n\n4<|im_end|>\n"
    ids, labels = render_conversation(template, tokenizer, THINK_CONV, enable_thinking=False)
    assert _label_spans(tokenizer, ids, labels)[-1] == "4<|im_end|>\n"
    # preserve_thinking trains every reply with its thought, or with the empty block when it has none.
    ids, labels = render_conversation(template, tokenizer, plain, enable_thinking=True, preserve_thinking=True)
    assert _label_spans(tokenizer, ids, labels) == [
        "<think>\ngreet\n</think>\n\nHello!<|im_end|>\n", "<think>\n\n</think>\n\n4<|im_end|>\n"
    ]


# --- the `tokenizer` pseudo-template ---


def test_tokenizer_template_renders_with_the_jinja(chatml_tokenizer):
    template = get_template("tokenizer")
    expected = chatml_tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, *CONV[:3]], tokenize=False, add_generation_prompt=True
    )
    assert render_text(template, CONV[:3], system=SYSTEM, tokenizer=chatml_tokenizer) == expected
    ids = render_prompt_ids(template, chatml_tokenizer, CONV[:3], system=SYSTEM)
    assert chatml_tokenizer.decode(ids) == expected


def test_tokenizer_template_masks(chatml_tokenizer):
    template = get_template("tokenizer")
    ids, labels = render_conversation(template, chatml_tokenizer, CONV, system=SYSTEM)
    assert _label_spans(chatml_tokenizer, ids, labels) == ["Hello!<|im_end|>\n", "4<|im_end|>\n"]
    assert chatml_tokenizer.decode(ids).startswith("<|im_start|>system\nYou are a bot.<|im_end|>\n")
    ids, labels = render_conversation(template, chatml_tokenizer, LONG, system=SYSTEM, cutoff_len=50)
    assert len(ids) == len(labels) <= 50


def test_tokenizer_template_skips_replies_it_rewrites(tokenizer):
    # A reasoning template drops old thoughts, so the first reply reads differently in the full conversation:
    # it stays in the prompt (untrained), while the last reply is found and trained.
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = to_jinja(get_template("qwen3"))
    ids, labels = render_conversation(get_template("tokenizer"), tok, THINK_CONV)
    assert tok.decode(ids) == tok.apply_chat_template(THINK_CONV, tokenize=False)
    assert _label_spans(tok, ids, labels) == ["<think>\nadd\n</think>\n\n4<|im_end|>\n"]


def test_tokenizer_template_without_chat_template(tokenizer):
    with pytest.raises(ModelError) as info:
        render_conversation(get_template("tokenizer"), tokenizer, CONV)
    assert info.value.key == "no_chat_template"
    with pytest.raises(ModelError):
        fix_tokenizer(get_template("tokenizer"), copy.deepcopy(tokenizer))


# --- fix_tokenizer and the generated jinja ---


def test_fix_tokenizer_replaces_eos_and_adds_stop_words(tokenizer):
    tok = copy.deepcopy(tokenizer)
    fix_tokenizer(get_template("llama3"), tok)
    assert tok.eos_token == "<|eot_id|>"
    assert tok.pad_token == "<|eot_id|>"
    assert len(tok.encode("<|eom_id|>", add_special_tokens=False)) == 1  # the missing stop word was added
    assert len(tok) == len(tokenizer) + 1
    assert tok.chat_template == to_jinja(get_template("llama3"))


def test_fix_tokenizer_keeps_an_existing_chat_template(chatml_tokenizer):
    tok = copy.deepcopy(chatml_tokenizer)
    fix_tokenizer(get_template("empty"), tok)
    assert tok.chat_template == CHATML_JINJA
    assert tok.eos_token == "</s>" and tok.pad_token == "</s>"


def test_generic_templates_replace_a_base_model_s_chat_template(chatml_tokenizer):
    tok = copy.deepcopy(chatml_tokenizer)
    fix_tokenizer(get_template("alpaca"), tok)
    assert tok.chat_template == to_jinja(get_template("alpaca"))


JINJA_CONVS = [
    (CONV, SYSTEM),
    (CONV[:3], None),
    (CONV[:1], SYSTEM),
    ([*CONV[:2], {"role": "observation", "content": "result"}], SYSTEM),
]


@pytest.mark.parametrize("name", NAMED)
def test_generated_jinja_matches_render_text(tokenizer, name):
    template = get_template(name)
    tok = copy.deepcopy(tokenizer)
    fix_tokenizer(template, tok)
    for messages, system in JINJA_CONVS:
        hf = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "tool" if m["role"] == "observation" else m["role"], "content": m["content"]} for m in messages
        ]
        jinja_text = tok.apply_chat_template(hf, tokenize=False, add_generation_prompt=True)
        assert jinja_text == render_text(template, messages, system=system, tokenizer=tok)


@pytest.mark.parametrize("name", [name for name in NAMED if TEMPLATES[name].thought_words])
def test_generated_jinja_handles_thinking(tokenizer, name):
    template = get_template(name)
    tok = copy.deepcopy(tokenizer)
    fix_tokenizer(template, tok)
    for messages, thinking in [(THINK_CONV, None), (THINK_CONV, False), (THINK_CONV[:3], False), (CONV, None)]:
        extra = {} if thinking is None else {"enable_thinking": thinking}
        jinja_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
        assert jinja_text == render_text(template, messages, enable_thinking=thinking, tokenizer=tok)
