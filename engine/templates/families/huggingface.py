"""Hugging Face: SmolLM / SmolLM2 (ChatML) and Zephyr (H4's Mistral fine-tune, also TinyLlama chat)."""

from engine.templates.template import register_template

_SMOLLM = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>\n",
    "stop_words": ["<|im_end|>"],
}

register_template(name="smollm", description="SmolLM instruct (ChatML, no default system prompt)", **_SMOLLM)

register_template(
    name="smollm2",
    description="SmolLM2 instruct (ChatML with SmolLM's default system prompt)",
    default_system="You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
    **_SMOLLM,
)

register_template(
    name="zephyr",
    description="Zephyr / TinyLlama chat (<|system|> / <|user|> / <|assistant|>, turns closed by eos)",
    system="<|system|>\n{content}{eos}",
    user="<|user|>\n{content}{eos}",
    generation_prompt="<|assistant|>\n",
    assistant="{content}{eos}",
    default_system="You are Zephyr, a helpful assistant.",
)
