"""Meta Llama: Llama 2 chat ([INST] with <<SYS>>), Llama 3.x (header ids, JSON tool calls; Llama 3.2 Vision reads
images) and Llama 4."""

from engine.templates.template import register_media_variant, register_template

_LLAMA2 = {
    "system": "<<SYS>>\n{content}\n<</SYS>>\n\n",
    "system_in_user": True,
    # Every exchange is its own <s> … </s> sequence.
    "user": "{bos}[INST] {content} [/INST]",
    "assistant": "{content}{eos}",
}

register_template(
    name="llama2",
    description="Llama 2 chat ([INST] … [/INST], system in <<SYS>> inside the first turn)",
    **_LLAMA2,
)

register_template(
    name="llama2_zh",
    description="Chinese Llama 2 fine-tunes (llama2 layout, bilingual default system prompt)",
    default_system="You are a helpful assistant. 你是一个乐于助人的助手。",
    **_LLAMA2,
)

register_template(
    name="llama3",
    description="Llama 3 / 3.1 / 3.2 / 3.3 instruct (JSON tool calls, ipython tool results)",
    prefix="{bos}",
    system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
    user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>",
    observation="<|start_header_id|>ipython<|end_header_id|>\n\n{content}<|eot_id|>",
    generation_prompt="<|start_header_id|>assistant<|end_header_id|>\n\n",
    assistant="{content}<|eot_id|>",
    tool_format="llama3",
    stop_words=["<|eot_id|>", "<|eom_id|>"],
    replace_eos=True,
)

register_template(
    name="llama4",
    description="Llama 4 instruct (header_start/header_end, JSON tool calls); text only",
    prefix="{bos}",
    system="<|header_start|>system<|header_end|>\n\n{content}<|eot|>",
    user="<|header_start|>user<|header_end|>\n\n{content}<|eot|>",
    observation="<|header_start|>ipython<|header_end|>\n\n{content}<|eot|>",
    generation_prompt="<|header_start|>assistant<|header_end|>\n\n",
    assistant="{content}<|eot|>",
    tool_format="llama3",
    stop_words=["<|eot|>", "<|eom|>"],
    replace_eos=True,
)

register_media_variant("mllama", "llama3", mm_plugin="mllama",
                       description="Llama 3.2 Vision (Llama 3 layout) with images")
