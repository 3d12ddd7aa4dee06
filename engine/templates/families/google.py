"""Google Gemma 1/2/3 (<start_of_turn> … <end_of_turn>; no system role)."""

from engine.templates.template import register_template

register_template(
    name="gemma",
    description="Gemma / Gemma 2 / Gemma 3 instruct (system text folded into the first user turn)",
    prefix="<bos>",
    system="{content}\n\n",
    system_in_user=True,
    user="<start_of_turn>user\n{content}<end_of_turn>\n",
    generation_prompt="<start_of_turn>model\n",
    assistant="{content}<end_of_turn>",
    separator="\n",
    stop_words=["<end_of_turn>"],
    replace_eos=True,
)
