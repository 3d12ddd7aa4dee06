"""DeepSeek: LLM / V2 chat, V3 and R1 (<｜User｜> / <｜Assistant｜>, R1 with <think> reasoning) and DeepSeek-Coder."""

from engine.templates.template import register_template

register_template(
    name="deepseek",
    description="DeepSeek LLM / V2 chat ('User: … / Assistant: …')",
    prefix="{bos}",
    system="{content}\n\n",
    user="User: {content}\n\n",
    generation_prompt="Assistant:",
    assistant="{content}{eos}",
)

register_template(
    name="deepseek3",
    description="DeepSeek V3 / V2.5 (<｜User｜> / <｜Assistant｜>)",
    prefix="{bos}",
    user="<｜User｜>{content}",
    generation_prompt="<｜Assistant｜>",
    assistant="{content}{eos}",
)

register_template(
    name="deepseekr1",
    description="DeepSeek R1 and its distilled models, with reasoning (<think> blocks)",
    prefix="{bos}",
    user="<｜User｜>{content}",
    generation_prompt="<｜Assistant｜>",
    assistant="{content}{eos}",
    thought_words=("<think>\n", "\n</think>\n\n"),
)

register_template(
    name="deepseekcoder",
    description="DeepSeek-Coder instruct ('### Instruction: / ### Response:', <|EOT|>)",
    prefix="{bos}",
    user="### Instruction:\n{content}\n",
    generation_prompt="### Response:",
    assistant="\n{content}\n<|EOT|>\n",
    default_system=(
        "You are an AI programming assistant, utilizing the DeepSeek Coder model, "
        "developed by DeepSeek Company, and you only answer questions related to computer science. "
        "For politically sensitive questions, security and privacy issues, "
        "and other non-computer science questions, you will refuse to answer.\n"
    ),
)
