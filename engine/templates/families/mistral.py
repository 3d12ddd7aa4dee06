"""Mistral AI instruct models ([INST], v0.3 tool calls) and Zephyr, HuggingFace H4's Mistral fine-tune."""

from engine.templates.template import register_template

register_template(
    name="mistral",
    description="Mistral / Mixtral instruct v0.3 ([INST] … [/INST], [TOOL_CALLS] tools)",
    prefix="<s>",
    # Mistral has no system role; the system text opens the first instruction.
    system="{content}\n\n",
    system_in_user=True,
    user="[INST] {content}[/INST]",
    observation='[TOOL_RESULTS] {"content": {content}}[/TOOL_RESULTS]',
    assistant=" {content}</s>",
    function="{content}</s>",
    tools_in_system=False,
    tool_format="mistral",
)

register_template(
    name="zephyr",
    description="Zephyr (<|system|> / <|user|> / <|assistant|>, turns closed by </s>)",
    system="<|system|>\n{content}</s>\n",
    user="<|user|>\n{content}</s>\n",
    generation_prompt="<|assistant|>\n",
    assistant="{content}</s>",
    separator="\n",
)
