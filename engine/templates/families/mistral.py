"""Mistral AI instruct models: v3 tokenizer ([INST] with spaces), Tekken (Ministral, Mistral NeMo) and v7 (Small 3.x).

Tools are listed in [AVAILABLE_TOOLS] inside the system text; calls follow [TOOL_CALLS], results [TOOL_RESULTS].
"""

from engine.templates.template import register_media_variant, register_template

_TEKKEN = {
    "prefix": "{bos}",
    "user": "[INST]{content}[/INST]",
    "observation": '[TOOL_RESULTS]{"content": {content}}[/TOOL_RESULTS]',
    "assistant": "{content}{eos}",
    "function": "[TOOL_CALLS]{content}{eos}",
    "tool_format": "mistral",
}

register_template(
    name="mistral",
    description="Mistral / Mixtral instruct, v3 tokenizer ([INST] … [/INST], [TOOL_CALLS] tools)",
    # Mistral has no system role: the system text opens the first instruction.
    system="{content}\n\n",
    system_in_user=True,
    **{
        **_TEKKEN,
        "user": "[INST] {content}[/INST]",
        "observation": '[TOOL_RESULTS] {"content": {content}}[/TOOL_RESULTS]',
        "assistant": " {content}{eos}",
        "function": "[TOOL_CALLS] {content}{eos}",
    },
)

register_template(
    name="ministral",
    description="Ministral / Mistral NeMo, Tekken tokenizer ([INST]…[/INST] without spaces)",
    system="{content}\n\n",
    system_in_user=True,
    **_TEKKEN,
)

register_template(
    name="ministral3",
    description="Ministral 3 (Tekken layout, system text in the first instruction); text only",
    system="{content}\n\n",
    system_in_user=True,
    **_TEKKEN,
)

register_template(
    name="mistral_small",
    description="Mistral Small 3.x / Magistral, v7 tokenizer ([SYSTEM_PROMPT] block); text only",
    system="[SYSTEM_PROMPT]{content}[/SYSTEM_PROMPT]",
    **_TEKKEN,
)

register_media_variant("pixtral", "ministral3", mm_plugin="pixtral",
                       description="Pixtral 12B (Tekken layout, as ministral3) with images")
