"""Alibaba Qwen: Qwen 1.5/2/2.5 (ChatML with a default system prompt) and Qwen 3 (with `<think>` reasoning)."""

from engine.templates.template import register_template

_QWEN = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    # Qwen returns tool results in a user turn, wrapped in <tool_response> tags.
    "observation": "<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>",
    "separator": "\n",
    "tool_format": "qwen",
    "stop_words": ["<|im_end|>"],
    "replace_eos": True,
}

register_template(
    name="qwen",
    description="Qwen 1.5 / 2 / 2.5 chat (ChatML, <tool_call> tools)",
    default_system="You are a helpful assistant.",
    **_QWEN,
)

register_template(
    name="qwen3",
    description="Qwen 3 (ChatML, <think> reasoning, <tool_call> tools)",
    think_words=("<think>", "</think>"),
    **_QWEN,
)
