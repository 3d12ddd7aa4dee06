"""Formats of other Chinese labs: 01.AI Yi (and Yi-VL, which reads images), Baichuan 2, InternLM 2, TeleChat 2,
XuanYuan, Yuan, Index, MiniCPM 4, Ant Ling (bailing), Xiaomi MiMo, Moonshot Moonlight and InternVL (reads images)."""

from engine.templates.template import register_media_variant, register_template

_CHATML = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>\n",
    "stop_words": ["<|im_end|>"],
}

register_template(name="yi", description="Yi / Yi-1.5 chat (ChatML without a default system prompt)", **_CHATML)

register_template(
    name="yi_vl",
    description="Yi-VL ('### Human: … ### Assistant:') with images (a LLaVA model)",
    user="### Human: {content}\n",
    generation_prompt="### Assistant:",
    assistant="{content}\n",
    default_system=(
        "This is a chat between an inquisitive human and an AI assistant. "
        "Assume the role of the AI assistant. Read all the images carefully, "
        "and respond to the human's questions with informative, helpful, detailed and polite answers. "
        "这是一个好奇的人类和一个人工智能助手之间的对话。假设你扮演这个AI助手的角色。"
        "仔细阅读所有的图像，并对人类的问题做出信息丰富、有帮助、详细的和礼貌的回答。\n\n"
    ),
    stop_words=["###"],
    efficient_eos=True,
    mm_plugin="llava",
)

register_template(
    name="intern2",
    description="InternLM 2 / 2.5 chat (ChatML after bos, InternLM default system prompt)",
    prefix="{bos}",
    default_system=(
        "You are an AI assistant whose name is InternLM (书生·浦语).\n"
        "- InternLM (书生·浦语) is a conversational language model that is developed by Shanghai AI Laboratory "
        "(上海人工智能实验室). It is designed to be helpful, honest, and harmless.\n"
        "- InternLM (书生·浦语) can understand and communicate fluently in the language chosen by the user such as "
        "English and 中文."
    ),
    **_CHATML,
)

register_template(
    name="cpm4",
    description="MiniCPM 4 (ChatML after bos, tool role for results)",
    prefix="{bos}",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    **_CHATML,
)

register_template(
    name="baichuan2",
    description="Baichuan 2 chat (<reserved_106> user, <reserved_107> assistant)",
    user="<reserved_106>{content}",
    generation_prompt="<reserved_107>",
    efficient_eos=True,
)

register_template(
    name="telechat2",
    description="TeleChat 2 (<_user> / <_bot>, TeleChat's default system prompt)",
    system="<_system>{content}",
    user="<_user>{content}",
    generation_prompt="<_bot>",
    assistant="{content}{eos}",
    default_system=(
        "你是中国电信星辰语义大模型，英文名是TeleChat，你是由中电信人工智能科技有限公司和中国电信人工智能研究院"
        "（TeleAI）研发的人工智能助手。"
    ),
)

register_template(
    name="xuanyuan",
    description="XuanYuan finance models ('Human: … Assistant:', Chinese default system prompt)",
    user="Human: {content} ",
    generation_prompt="Assistant:",
    assistant="{content}{eos}",
    default_system=(
        "以下是用户和人工智能助手之间的对话。用户以Human开头，人工智能助手以Assistant开头，"
        "会对人类提出的问题给出有帮助、高质量、详细和礼貌的回答，并且总是拒绝参与与不道德、"
        "不安全、有争议、政治敏感等相关的话题、问题和指示。\n"
    ),
)

register_template(
    name="yuan",
    description="IEIT Yuan 2 (<sep> after the prompt, <eod> after the reply)",
    user="{content}<sep>",
    assistant="{content}<eod>\n",
    stop_words=["<eod>"],
)

register_template(
    name="index",
    description="bilibili Index chat (reserved_0 … reserved_1 around the user message)",
    system="<unk>{content}",
    user="reserved_0{content}reserved_1",
    efficient_eos=True,
)

register_template(
    name="bailing",
    description="Ant Ling / Bailing lite and plus (<role>HUMAN</role> … <role>ASSISTANT</role>)",
    system="<role>SYSTEM</role>{content}",
    user="<role>HUMAN</role>{content}",
    observation="<role>OBSERVATION</role>{content}",
    generation_prompt="<role>ASSISTANT</role>",
    stop_words=["<|endoftext|>"],
    efficient_eos=True,
)

register_template(
    name="bailing_v2",
    description="Ant Ling 2.0 (<role> tags closed by <|role_end|>, <tool_call> tools)",
    system="<role>SYSTEM</role>{content}<|role_end|>",
    user="<role>HUMAN</role>{content}<|role_end|>",
    observation="<role>OBSERVATION</role>\n<tool_response>\n{content}\n</tool_response><|role_end|>",
    generation_prompt="<role>ASSISTANT</role>",
    assistant="{content}<|role_end|>",
    tool_format="ling",
    stop_words=["<|endoftext|>"],
    efficient_eos=True,
)

_MIMO = {
    **_CHATML,
    "observation": "<|im_start|>user\n<tool_response>\n{content}\n</tool_response><|im_end|>\n",
    "tool_format": "qwen",
    "replace_eos": True,
}

register_template(
    name="mimo",
    description="Xiaomi MiMo 7B with reasoning (Qwen layout, <think> blocks)",
    default_system="You are a helpful assistant.",
    thought_words=("<think>\n", "\n</think>\n\n"),
    **_MIMO,
)

register_template(
    name="mimo_v2",
    description="Xiaomi MiMo V2 with reasoning (Qwen layout, MiMo's default system prompt)",
    default_system="You are MiMo, a helpful AI assistant engineered by Xiaomi.",
    thought_words=("<think>", "</think>"),
    **_MIMO,
)

register_media_variant("mimo_vl", "mimo", mm_plugin="qwen2_vl",
                       default_system="You are MiMo, an AI assistant developed by Xiaomi.",
                       description="Xiaomi MiMo-VL with reasoning (Qwen2.5-VL inside) and images, videos")

register_template(
    name="moonlight",
    description="Moonshot Moonlight / Kimi (<|im_user|> / <|im_assistant|> with <|im_middle|>)",
    system="<|im_system|>system<|im_middle|>{content}<|im_end|>",
    user="<|im_user|>user<|im_middle|>{content}<|im_end|>",
    generation_prompt="<|im_assistant|>assistant<|im_middle|>",
    assistant="{content}<|im_end|>",
    default_system="You are a helpful assistant provided by Moonshot-AI.",
    stop_words=["<|im_end|>"],
    replace_eos=True,
)

# InternVL (Shanghai AI Lab, the transformers-format "-hf" checkpoints): ChatML after bos, reading images.
register_template(
    name="intern_vl",
    description="InternVL 2.5 / 3 / 3.5 (ChatML after bos, InternVL's default system prompt) with images",
    default_system=("你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的"
                    "多模态大语言模型。"),
    prefix="{bos}",
    mm_plugin="intern_vl",
    **_CHATML,
)
