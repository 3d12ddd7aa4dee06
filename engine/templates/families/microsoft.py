"""Microsoft Phi: Phi-3 / 3.5 (<|user|> … <|end|>), Phi-3-small, Phi-4 (<|im_sep|>) and Phi-4-mini (<|tool|> tools)."""

from engine.templates.template import register_template

_PHI3 = {
    "system": "<|system|>\n{content}<|end|>\n",
    "user": "<|user|>\n{content}<|end|>\n",
    "generation_prompt": "<|assistant|>\n",
    "assistant": "{content}<|end|>\n",
    "stop_words": ["<|end|>"],
    "replace_eos": True,
}

register_template(name="phi", description="Phi-3 / Phi-3.5 instruct (<|user|> … <|end|>)", **_PHI3)

register_template(
    name="phi_small",
    description="Phi-3-small instruct (as phi, opened by the tokenizer's bos <|endoftext|>)",
    # The official template opens with the bos; LLaMA-Factory 0.9.5 leaves it out (docs/templates.md).
    prefix="{bos}",
    **_PHI3,
)

register_template(
    name="phi4",
    description="Phi-4 14B (<|im_start|>role<|im_sep|> … <|im_end|>)",
    system="<|im_start|>system<|im_sep|>{content}<|im_end|>",
    user="<|im_start|>user<|im_sep|>{content}<|im_end|>",
    generation_prompt="<|im_start|>assistant<|im_sep|>",
    assistant="{content}<|im_end|>",
    stop_words=["<|im_end|>"],
    replace_eos=True,
)

register_template(
    name="phi4_mini",
    description="Phi-4-mini instruct (<|user|> … <|end|>, tools in <|tool|> … <|/tool|>)",
    system="<|system|>{content}<|end|>",
    user="<|user|>{content}<|end|>",
    generation_prompt="<|assistant|>",
    assistant="{content}<|end|>",
    tool_format="phi4_mini",
    stop_words=["<|end|>"],
    replace_eos=True,
)
