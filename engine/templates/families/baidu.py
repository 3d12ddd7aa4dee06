"""Baidu ERNIE 4.5: the thinking models (ChatML-like with blank lines) and the non-thinking ones."""

from engine.templates.template import register_template

register_template(
    name="ernie",
    description="ERNIE 4.5 thinking models (<|im_start|> roles, think mode set in the system prompt)",
    system="<|im_start|>system\n{content}<|im_end|>\n\n",
    user="<|im_start|>user\n{content}<|im_end|>\n\n",
    observation="<|im_start|>tool\n{content}<|im_end|>\n\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>\n\n",
    default_system="<global_setting>\nthink_mode=True\n</global_setting>",
    stop_words=["<|im_end|>"],
)

register_template(
    name="ernie_nothink",
    description="ERNIE 4.5 instruct without reasoning ('User: … / Assistant: …')",
    prefix="<|begin_of_sentence|>",
    system="{content}\n",
    user="User: {content}\n",
    generation_prompt="Assistant: ",
    assistant="{content}<|end_of_sentence|>",
    stop_words=["<|end_of_sentence|>"],
)
