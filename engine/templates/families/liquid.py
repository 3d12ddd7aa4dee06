"""Liquid AI LFM2 / LFM2.5 (ChatML roles, Python-style tool calls between tool-call tokens)."""

from engine.templates.template import register_template

register_template(
    name="lfm2",
    description="Liquid LFM2 / LFM2.5 (ChatML, [name(arg=…)] tool calls)",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    observation="<|im_start|>tool\n<|tool_response_start|>{content}<|tool_response_end|><|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>\n",
    default_system="You are a helpful AI assistant.",
    tool_format="lfm2",
    stop_words=["<|im_end|>"],
    replace_eos=True,
)
