"""Google Gemma 1/2/3/3n (<start_of_turn> … <end_of_turn>, no system role) and Gemma 4 (<|turn>, reasoning).

Gemma 3 (template gemma3; its text-only checkpoints train as text) and PaliGemma (paligemma, paligemma_chat) read
images here. Gemma 3n, 4 and 4n read images (and audio) too; only their text conversations are rendered here.
"""

from engine.templates.template import register_template

_GEMMA = {
    "prefix": "{bos}",
    # No system role: the system text opens the first user message.
    "system": "{content}\n\n",
    "system_in_user": True,
    "user": "<start_of_turn>user\n{content}<end_of_turn>\n",
    "observation": "<start_of_turn>tool\n{content}<end_of_turn>\n",
    "generation_prompt": "<start_of_turn>model\n",
    "assistant": "{content}<end_of_turn>\n",
    "stop_words": ["<end_of_turn>"],
    "replace_eos": True,
}

register_template(name="gemma", description="Gemma instruct (system text folded into the first user turn)", **_GEMMA)

register_template(
    name="gemma2",
    description="Gemma 2 instruct (as gemma; the last reply ends with the tokenizer's eos)",
    **{**_GEMMA, "stop_words": ["<eos>", "<end_of_turn>"], "replace_eos": False},
    efficient_eos=True,
)

register_template(name="gemma3", description="Gemma 3 instruct (as gemma) with images", mm_plugin="gemma3",
                  **_GEMMA)

# PaliGemma: images, then bos and the prompt; the plain one is for the pre-trained and task-tuned (mix) checkpoints.
register_template(
    name="paligemma",
    description="PaliGemma 1 / 2: 'prompt\\n' answer, images in front of bos",
    prefix="{bos}",
    user="{content}\n",
    assistant="{content}{eos}",
    system_in_user=True,
    mm_plugin="paligemma",
)

register_template(
    name="paligemma_chat",
    description="PaliGemma fine-tuned for chat (Gemma turns), images in front of bos",
    **{**_GEMMA, "system": "{content}"},
    mm_plugin="paligemma",
)

register_template(name="gemma3n", description="Gemma 3n instruct (as gemma); text only", **_GEMMA)

_GEMMA4 = {
    "prefix": "{bos}",
    # The <|think|> flag in the system turn switches reasoning on, hence the default system prompt.
    "system": "<|turn>system\n<|think|>{content}<turn|>\n",
    "user": "<|turn>user\n{content}<turn|>\n",
    "observation": "<|turn>tool\n{content}<turn|>\n",
    "generation_prompt": "<|turn>model\n",
    "assistant": "{content}<turn|>\n",
    "function": "<|tool>{content}<tool|>",
    "default_system": "You are a helpful assistant.",
    "tool_format": "gemma4",
    "stop_words": ["<turn|>"],
    "replace_eos": True,
    "thought_words": ("<|channel>thought\n", "<channel|>"),
}

register_template(name="gemma4", description="Gemma 4 with reasoning (<|turn> roles, thought channel); text only",
                  **_GEMMA4)

register_template(name="gemma4n", description="Gemma 4n with reasoning (as gemma4); text only", **_GEMMA4)
