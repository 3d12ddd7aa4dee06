"""Model-agnostic formats (default, empty, alpaca, vicuna, chatml) and the `tokenizer` pseudo-template.

They write the tokenizer's own bos/eos through `{bos}`/`{eos}`, so they suit base models of any family.
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
    description="Plain 'Human: … / Assistant: …' lines, each reply closed by the tokenizer's eos",
    prefix="{bos}",
    system="System: {content}\n",
    user="Human: {content}\n",
    observation="Observation: {content}\n",
    generation_prompt="Assistant: ",
    assistant="{content}{eos}",
    separator="\n",
)

register_template(
    name="empty",
    description="No decoration at all: messages are concatenated, the last reply ends with eos",
    prefix="{bos}",
    efficient_eos=True,
)

register_template(
    name="alpaca",
    description="Stanford Alpaca '### Instruction: / ### Response:' blocks",
    prefix="{bos}",
    system="{content}\n\n",
    user="### Instruction:\n{content}\n\n",
    generation_prompt="### Response:\n",
    assistant="{content}{eos}",
    separator="\n\n",
    default_system=(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    ),
)

register_template(
    name="vicuna",
    description="Vicuna v1.1 'USER: … ASSISTANT: …'",
    prefix="{bos}",
    system="{content} ",
    user="USER: {content} ",
    generation_prompt="ASSISTANT:",
    assistant=" {content}{eos}",
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
)

register_template(
    name="chatml",
    description="ChatML (<|im_start|>role … <|im_end|>), no default system prompt",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>",
    separator="\n",
    stop_words=["<|im_end|>", "<|im_start|>"],
    replace_eos=True,
)
