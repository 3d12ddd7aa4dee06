"""Allen AI OLMo instruct (opened by the eos token, <|user|> / <|assistant|>)."""

from engine.templates.template import register_template

register_template(
    name="olmo",
    description="OLMo instruct (eos first, <|user|> … <|assistant|>)",
    prefix="{eos}",
    user="<|user|>\n{content}",
    generation_prompt="<|assistant|>\n",
    assistant="{content}{eos}",
)
