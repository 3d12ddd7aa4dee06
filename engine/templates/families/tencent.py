"""Tencent: Hunyuan (7B/A13B), Hunyuan small models, Hy3 (reasoning) and Youtu-LLM."""

from engine.templates.template import register_template

register_template(
    name="hunyuan",
    description="Hunyuan 7B / A13B instruct (<|extra_0|> after the user, <|eos|> after replies)",
    prefix="<|startoftext|>",
    system="{content}<|extra_4|>",
    user="{content}<|extra_0|>",
    assistant="{content}<|eos|>",
    stop_words=["<|eos|>"],
)

register_template(
    name="hunyuan_small",
    description="Hunyuan 0.5B–7B dense instruct (<｜hy_User｜> with place-holder tokens)",
    prefix="<｜hy_begin▁of▁sentence｜>",
    system="{content}<｜hy_place▁holder▁no▁3｜>",
    user="<｜hy_User｜>{content}",
    generation_prompt="<｜hy_place▁holder▁no▁8｜>",
    assistant="{content}<｜hy_place▁holder▁no▁2｜>",
    stop_words=["<｜hy_place▁holder▁no▁2｜>"],
)

register_template(
    name="hy3",
    description="Tencent Hy3 with reasoning (<｜hy_User｜> / <｜hy_Assistant｜>, <think> blocks)",
    prefix="{bos}",
    user="<｜hy_User｜>{content}",
    generation_prompt="<｜hy_Assistant｜>",
    assistant="{content}<｜hy_eos｜>",
    thought_words=("<think>", "</think>"),
    stop_words=["<｜hy_eos｜>"],
    replace_eos=True,
)

register_template(
    name="youtu",
    description="Youtu-LLM with reasoning (<|User|> / <|Assistant|>, <think> blocks)",
    prefix="{bos}",
    user="<|User|>{content}",
    observation="<tool_response>\n{content}\n</tool_response>",
    generation_prompt="<|Assistant|>",
    assistant="{content}<|end_of_text|>",
    function="{content}",
    thought_words=("<think>\n", "\n</think>\n\n"),
    stop_words=["<|end_of_text|>"],
    replace_eos=True,
)
