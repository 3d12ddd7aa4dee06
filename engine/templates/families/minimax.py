"""MiniMax: MiniMax-M1 / Text-01 (<beginning_of_sentence> roles) and MiniMax-M2 (reasoning, XML tool calls)."""

from engine.templates.template import register_template

register_template(
    name="minimax1",
    description="MiniMax-M1 / Text-01 (<beginning_of_sentence> roles, <tool_calls> JSON)",
    system="<beginning_of_sentence>system ai_setting=assistant\n{content}<end_of_sentence>\n",
    user="<beginning_of_sentence>user name=user\n{content}<end_of_sentence>\n",
    observation="<beginning_of_sentence>tool name=tools\n{content}<end_of_sentence>\n",
    generation_prompt="<beginning_of_sentence>ai name=assistant\n",
    assistant="{content}<end_of_sentence>\n",
    default_system="You are a helpful assistant.",
    tool_format="minimax1",
    stop_words=["<end_of_sentence>"],
)

register_template(
    name="minimax2",
    description="MiniMax-M2 / M2.1 with reasoning (]~b] roles, <minimax:tool_call> calls)",
    system="]~!b[]~b]system\n{content}[e~[\n",
    user="]~b]user\n{content}[e~[\n",
    observation="]~b]tool\n<response>{content}</response>[e~[\n",
    generation_prompt="]~b]ai\n",
    assistant="{content}[e~[\n",
    default_system="You are a helpful assistant. Your name is MiniMax-M2.1 and is built by MiniMax.",
    tool_format="minimax2",
    thought_words=("<think>\n", "\n</think>\n\n"),
    stop_words=["[e~["],
)
