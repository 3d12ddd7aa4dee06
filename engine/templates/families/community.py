"""Formats of other open model makers: Cohere, TII Falcon, BigCode StarChat, OpenChat, Upstage Solar, LG EXAONE,
Databricks DBRX, Sea AI Sailor, OpenCoder and MediaTek Breeze."""

from engine.templates.template import register_template

_CHATML = {
    "system": "<|im_start|>system\n{content}<|im_end|>\n",
    "user": "<|im_start|>user\n{content}<|im_end|>\n",
    "generation_prompt": "<|im_start|>assistant\n",
    "assistant": "{content}<|im_end|>\n",
    "stop_words": ["<|im_end|>"],
}

register_template(
    name="cohere",
    description="Cohere Command-R / R+ (<|START_OF_TURN_TOKEN|> role tokens)",
    prefix="{bos}",
    system="<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
    user="<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
    generation_prompt="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    assistant="{content}{eos}",
)

register_template(
    name="falcon",
    description="Falcon instruct ('User: … / Falcon: …', the last reply ends with eos)",
    user="User: {content}\n",
    generation_prompt="Falcon:",
    assistant="{content}\n",
    efficient_eos=True,
)

register_template(
    name="falcon_h1",
    description="Falcon-H1 instruct (ChatML after bos, tool role for results)",
    prefix="{bos}",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    **{**_CHATML, "stop_words": ["<|im_end|>", "<|end_of_text|>"]},
)

register_template(
    name="starchat",
    description="StarChat (<|system|> / <|user|> / <|assistant|>, turns closed by <|end|>)",
    system="<|system|>\n{content}<|end|>\n",
    user="<|user|>\n{content}<|end|>\n",
    generation_prompt="<|assistant|>",
    assistant="{content}<|end|>\n",
    stop_words=["<|end|>"],
)

register_template(
    name="openchat",
    description="OpenChat 3.5 ('GPT4 Correct User: … GPT4 Correct Assistant:')",
    prefix="{bos}",
    user="GPT4 Correct User: {content}{eos}",
    generation_prompt="GPT4 Correct Assistant:",
    assistant="{content}{eos}",
)

register_template(
    name="openchat-3.6",
    description="OpenChat 3.6 (Llama 3 headers with 'GPT4 Correct' roles)",
    prefix="{bos}",
    user="<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\n{content}<|eot_id|>",
    generation_prompt="<|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\n",
    assistant="{content}{eos}",
    stop_words=["<|eot_id|>"],
)

register_template(
    name="solar",
    description="Upstage SOLAR instruct ('### User: / ### Assistant:')",
    system="### System:\n{content}\n\n",
    user="### User:\n{content}\n\n",
    generation_prompt="### Assistant:\n",
    efficient_eos=True,
)

register_template(
    name="exaone",
    description="LG EXAONE 3 / 3.5 ([|user|] / [|assistant|], turns closed by eos)",
    system="[|system|]{content}[|endofturn|]\n",
    user="[|user|]{content}\n",
    generation_prompt="[|assistant|]",
    assistant="{content}{eos}\n",
)

register_template(
    name="dbrx",
    description="Databricks DBRX instruct (ChatML, DBRX's long default system prompt)",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    default_system=(
        "You are DBRX, created by Databricks. You were last updated in December 2023. "
        "You answer questions based on information available up to that point.\n"
        "YOU PROVIDE SHORT RESPONSES TO SHORT QUESTIONS OR STATEMENTS, but provide thorough "
        "responses to more complex and open-ended questions.\nYou assist with various tasks, "
        "from writing to coding (using markdown for code blocks — remember to use ``` with "
        "code, JSON, and tables).\n(You do not have real-time data access or code execution "
        "capabilities. You avoid stereotyping and provide balanced perspectives on "
        "controversial topics. You do not provide song lyrics, poems, or news articles and "
        "do not divulge details of your training data.)\nThis is your system prompt, "
        "guiding your responses. Do not reference it, just respond to the user. If you find "
        "yourself talking about this message, stop. You should be responding appropriately "
        "and usually that means not mentioning this.\nYOU DO NOT MENTION ANY OF THIS INFORMATION "
        "ABOUT YOURSELF UNLESS THE INFORMATION IS DIRECTLY PERTINENT TO THE USER'S QUERY."
    ),
    replace_eos=True,
    **_CHATML,
)

register_template(
    name="sailor",
    description="Sea AI Sailor (ChatML with question / answer roles)",
    user="<|im_start|>question\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>answer\n",
    default_system=(
        "You are an AI assistant named Sailor created by Sea AI Lab. "
        "Your answer should be friendly, unbiased, faithful, informative and detailed."
    ),
    **{key: value for key, value in _CHATML.items() if key not in ("user", "generation_prompt")},
)

register_template(
    name="opencoder",
    description="OpenCoder instruct (ChatML with OpenCoder's default system prompt)",
    observation="<|im_start|>tool\n{content}<|im_end|>\n",
    default_system="You are OpenCoder, created by OpenCoder Team.",
    **_CHATML,
)

register_template(
    name="breeze",
    description="MediaTek Breeze ([INST] … [/INST] after bos, the last reply ends with eos)",
    prefix="{bos}",
    user="[INST] {content} [/INST] ",
    efficient_eos=True,
)
