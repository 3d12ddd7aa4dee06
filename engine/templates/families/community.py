"""Formats of other open model makers: Cohere Command-R, TII Falcon, BigCode StarChat, IBM Granite 3."""

from engine.templates.template import register_template

register_template(
    name="cohere",
    description="Cohere Command-R / R+ (<|START_OF_TURN_TOKEN|> role tokens)",
    prefix="<BOS_TOKEN>",
    system="<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
    user="<|START_OF_TURN_TOKEN|><|USER_TOKEN|>{content}<|END_OF_TURN_TOKEN|>",
    generation_prompt="<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>",
    assistant="{content}<|END_OF_TURN_TOKEN|>",
    stop_words=["<|END_OF_TURN_TOKEN|>"],
    replace_eos=True,
)

register_template(
    name="falcon",
    description="Falcon instruct ('User: … / Falcon: …', the last reply ends with eos)",
    system="{content}\n",
    user="User: {content}\n",
    generation_prompt="Falcon:",
    assistant=" {content}",
    separator="\n",
    efficient_eos=True,
)

register_template(
    name="starchat",
    description="StarChat (<|system|> / <|user|> / <|assistant|>, turns closed by <|end|>)",
    system="<|system|>\n{content}<|end|>\n",
    user="<|user|>\n{content}<|end|>\n",
    generation_prompt="<|assistant|>\n",
    assistant="{content}<|end|>",
    separator="\n",
    stop_words=["<|end|>"],
    replace_eos=True,
)

register_template(
    name="granite3",
    description="IBM Granite 3.x instruct (<|start_of_role|> … <|end_of_text|>)",
    system="<|start_of_role|>system<|end_of_role|>{content}<|end_of_text|>\n",
    user="<|start_of_role|>user<|end_of_role|>{content}<|end_of_text|>\n",
    observation="<|start_of_role|>tool_response<|end_of_role|>{content}<|end_of_text|>\n",
    generation_prompt="<|start_of_role|>assistant<|end_of_role|>",
    assistant="{content}<|end_of_text|>",
    separator="\n",
    stop_words=["<|end_of_text|>"],
)
