"""Model-agnostic formats (default, empty, alpaca, vicuna, fewshot, chatml) and the `tokenizer` pseudo-template.

They write the tokenizer's own bos/eos through `{bos}`/`{eos}`, so they suit base models of any family; their jinja
replaces a base model's own chat template when the tokenizer is saved (`replace_jinja_template`).
"""

from engine.templates.template import TOKENIZER_TEMPLATE, register_template

register_template(
    name=TOKENIZER_TEMPLATE,
    description="The model's own chat template (tokenizer.chat_template), rendered by transformers",
    tool_format="auto",
    from_tokenizer=True,
)

register_template(
    name="default",
    description="Plain 'Human: … / Assistant: …' lines, each turn closed by the tokenizer's eos",
    system="System: {content}{eos}\n",
    user="Human: {content}{eos}\n",
    generation_prompt="Assistant:",
    assistant="{content}{eos}\n",
    replace_jinja_template=True,
)

register_template(
    name="empty",
    description="No decoration at all: messages are simply concatenated",
)

register_template(
    name="alpaca",
    description="Stanford Alpaca '### Instruction: / ### Response:' blocks",
    user="### Instruction:\n{content}\n\n",
    generation_prompt="### Response:\n",
    assistant="{content}{eos}\n\n",
    default_system=(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    ),
    replace_jinja_template=True,
)

register_template(
    name="vicuna",
    description="Vicuna v1.1 'USER: … ASSISTANT: …'",
    user="USER: {content} ",
    generation_prompt="ASSISTANT:",
    assistant="{content}{eos}",
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
    replace_jinja_template=True,
)

register_template(
    name="fewshot",
    description="Few-shot text for base models: replies separated by blank lines, eos at the end",
    assistant="{content}\n\n",
    efficient_eos=True,
    replace_jinja_template=True,
)

_CHATML = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    "observation": "<|im_start|>tool\n{content}<|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>\n",
    "stop_words": ["<|im_end|>", "<|im_start|>"],
    "replace_eos": True,
    "replace_jinja_template": True,
}

register_template(
    name="chatml",
    description="ChatML (<|im_start|>role … <|im_end|>), no default system prompt",
    **_CHATML,
)

register_template(
    name="chatml_de",
    description="ChatML with a German default system prompt (German fine-tunes)",
    default_system="Du bist ein freundlicher und hilfsbereiter KI-Assistent.",
    **_CHATML,
)
