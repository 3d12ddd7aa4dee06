"""Microsoft Phi: Phi-3 / Phi-3.5 / Phi-4-mini (<|user|> … <|end|>) and Phi-4 (<|im_sep|>)."""

from engine.templates.template import register_template

register_template(
    name="phi",
    description="Phi-3 / Phi-3.5 / Phi-4-mini instruct (<|user|> … <|end|>)",
    system="<|system|>\n{content}<|end|>\n",
    user="<|user|>\n{content}<|end|>\n",
    generation_prompt="<|assistant|>\n",
    assistant="{content}<|end|>",
    separator="\n",
    stop_words=["<|end|>"],
    replace_eos=True,
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
