"""OpenAI gpt-oss (a simplified harmony layout: analysis channel for reasoning, final channel for the answer)."""

from engine.templates.template import register_template

register_template(
    name="gpt_oss",
    description="gpt-oss 20B / 120B (harmony roles; reasoning in the analysis channel)",
    system="<|start|>system<|message|>{content}<|end|>",
    user="<|start|>user<|message|>{content}<|end|>",
    generation_prompt="<|start|>assistant",
    default_system="You are ChatGPT, a large language model trained by OpenAI.",
    thought_words=("<|channel|>analysis<|message|>", "<|end|><|start|>assistant<|channel|>final<|message|>"),
    efficient_eos=True,
)
