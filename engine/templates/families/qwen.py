"""Alibaba Qwen: Qwen 1.5/2/2.5 (ChatML), Qwen 3 (`<think>` reasoning) and Qwen 3.5/3.6 (XML-style tool calls).

The `_nothink` variants are for the instruct models that never reason: no reasoning block at all.
"""

from engine.templates.template import register_template

_QWEN = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    # Qwen returns tool results in a user turn, wrapped in <tool_response> tags.
    "observation": "<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>\n",
    "tool_format": "qwen",
    "stop_words": ["<|im_end|>"],
    "replace_eos": True,
}
_THINK = ("<think>\n", "\n</think>\n\n")

register_template(
    name="qwen",
    description="Qwen 1.5 / 2 / 2.5 chat (ChatML, Qwen's default system prompt, <tool_call> tools)",
    default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
    **_QWEN,
)

register_template(
    name="qwen2_vl",
    description="Qwen2-VL / Qwen2.5-VL: ChatML with images and videos",
    default_system="You are a helpful assistant.",
    mm_plugin="qwen2_vl",
    **_QWEN,
)

register_template(
    name="qwen2_audio",
    description="Qwen2-Audio: ChatML with audio clips",
    default_system="You are a helpful assistant.",
    mm_plugin="qwen2_audio",
    # LLaMA-Factory's qwen2_audio is plain ChatML: no tool-call format, tool results laid out as user turns.
    **{**_QWEN, "observation": None, "tool_format": "default"},
)

register_template(
    name="qwen3",
    description="Qwen 3 with reasoning (<think> blocks, <tool_call> tools)",
    thought_words=_THINK,
    **_QWEN,
)

register_template(
    name="qwen3_vl",
    description="Qwen3-VL with reasoning (<think> blocks) and images",
    thought_words=_THINK,
    mm_plugin="qwen3_vl",
    **_QWEN,
)

register_template(
    name="qwen3_vl_nothink",
    description="Qwen3-VL instruct without reasoning, with images",
    mm_plugin="qwen3_vl",
    **_QWEN,
)

register_template(
    name="qwen3_nothink",
    description="Qwen 3 instruct without reasoning (e.g. Qwen3-2507 Instruct)",
    **_QWEN,
)

register_template(
    name="qwen3_5",
    description="Qwen 3.5 with reasoning (<think> blocks, <function=…> tool calls); text only",
    thought_words=_THINK,
    **{**_QWEN, "tool_format": "qwen3_5"},
)

register_template(
    name="qwen3_5_nothink",
    description="Qwen 3.5 without reasoning; text only",
    **{**_QWEN, "tool_format": "qwen3_5"},
)

register_template(
    name="qwen3_6",
    description="Qwen 3.6 with reasoning (<think> blocks, <function=…> tool calls); text only",
    thought_words=_THINK,
    **{**_QWEN, "tool_format": "qwen3_5"},
)
