"""Chat formats of Chinese labs: Zhipu GLM-4, DeepSeek (LLM chat and V3/R1), 01.AI Yi, Baichuan 2, InternLM 2."""

from engine.templates.template import register_template

register_template(
    name="glm4",
    description="GLM-4 chat (<|user|> / <|assistant|> / <|observation|>, 'name\\n{args}' tool calls)",
    prefix="[gMASK]<sop>",
    system="<|system|>\n{content}",
    user="<|user|>\n{content}",
    observation="<|observation|>\n{content}",
    generation_prompt="<|assistant|>",
    assistant="\n{content}",
    function="{content}",
    tool_format="glm4",
    # A GLM reply ends where the next role tag starts; only the last reply gets the eos.
    stop_words=["<|user|>", "<|observation|>"],
    efficient_eos=True,
)

register_template(
    name="deepseek",
    description="DeepSeek LLM / V2 chat ('User: … / Assistant: …')",
    prefix="<｜begin▁of▁sentence｜>",
    system="{content}\n\n",
    user="User: {content}\n\n",
    generation_prompt="Assistant:",
    assistant=" {content}<｜end▁of▁sentence｜>",
)

register_template(
    name="deepseek3",
    description="DeepSeek V3 / V2.5 (<｜User｜> / <｜Assistant｜>)",
    prefix="<｜begin▁of▁sentence｜>",
    user="<｜User｜>{content}",
    generation_prompt="<｜Assistant｜>",
    assistant="{content}<｜end▁of▁sentence｜>",
)

register_template(
    name="yi",
    description="Yi / Yi-1.5 chat (ChatML without a default system prompt)",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>",
    separator="\n",
    stop_words=["<|im_end|>"],
    replace_eos=True,
)

register_template(
    name="baichuan2",
    description="Baichuan 2 chat (<reserved_106> user, <reserved_107> assistant)",
    user="<reserved_106>{content}",
    generation_prompt="<reserved_107>",
    efficient_eos=True,
)

register_template(
    name="intern2",
    description="InternLM 2 / 2.5 chat (ChatML after <s>, InternLM default system prompt)",
    prefix="<s>",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>",
    separator="\n",
    default_system=(
        "You are an AI assistant whose name is InternLM (书生·浦语).\n"
        "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
        "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
        "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user such as "
        "English and 中文."
    ),
    stop_words=["<|im_end|>"],
    replace_eos=True,
)
