"""IBM Granite 3.x and 4.x instruct (<|start_of_role|> … <|end_of_role|> … <|end_of_text|>), and Granite Vision 3.x
(<|user|> / <|assistant|>, a LLaVA-NeXT model that reads images)."""

from engine.templates.template import register_template

_GRANITE = {
    "system": "<|start_of_role|>system<|end_of_role|>{content}<|end_of_text|>\n",
    "user": "<|start_of_role|>user<|end_of_role|>{content}<|end_of_text|>\n",
    "generation_prompt": "<|start_of_role|>assistant<|end_of_role|>",
    "assistant": "{content}<|end_of_text|>\n",
}

register_template(name="granite3", description="IBM Granite 3.x instruct (<|start_of_role|> roles)", **_GRANITE)

register_template(
    name="granite4",
    description="IBM Granite 4.x instruct (Granite's default system prompt, tool role for results)",
    # Tool results in the tool role, answered after the usual assistant header (as the official template does).
    observation="<|start_of_role|>tool<|end_of_role|>{content}<|end_of_text|>\n",
    default_system="You are Granite, developed by IBM. You are a helpful AI assistant.",
    stop_words=["<|end_of_text|>"],
    **_GRANITE,
)

register_template(
    name="granite3_vision",
    description="IBM Granite Vision 3.x (<|user|> / <|assistant|>) with images",
    system="<|system|>\n{content}\n",
    user="<|user|>\n{content}\n",
    generation_prompt="<|assistant|>\n",
    assistant="{content}{eos}",
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
    mm_plugin="llava_next",
)
