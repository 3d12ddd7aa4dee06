"""Zhipu GLM: ChatGLM3, GLM-4 (`name\\n{args}` tool calls), GLM-Z1, GLM-4.5/4.6/4.7 (reasoning, XML tool calls), and
GLM-4.1V / 4.5V, which read images.

A GLM reply ends where the next role tag starts: only the last reply gets the eos (`efficient_eos`).
"""

from engine.templates.template import register_media_variant, register_template

_GLM = {
    "prefix": "[gMASK]<sop>",
    "system": "<|system|>\n{content}",
    "user": "<|user|>\n{content}",
    "observation": "<|observation|>\n{content}",
    "generation_prompt": "<|assistant|>",
    "assistant": "\n{content}",
    "function": "{content}",
    "tool_format": "glm4",
    "stop_words": ["<|user|>", "<|observation|>"],
    "efficient_eos": True,
}

register_template(
    name="chatglm3",
    description="ChatGLM3 (role tokens, each message tokenized apart as ChatGLM3 does)",
    **{**_GLM, "prefix": "[gMASK]sop"},
    content_apart=True,
)

register_template(
    name="glm4",
    description="GLM-4 chat (<|user|> / <|assistant|> / <|observation|>, 'name\\n{args}' tool calls)",
    **_GLM,
)

register_template(
    name="glmz1",
    description="GLM-Z1 with reasoning (<think> blocks, GLM-4 tool calls)",
    thought_words=("<think>\n", "\n</think>\n\n"),
    **_GLM,
)

register_template(
    name="glm4_moe",
    description="GLM-4.5 / 4.6 with reasoning (<think> blocks, <arg_key> tool calls)",
    thought_words=("<think>\n", "\n</think>\n\n"),
    **{**_GLM, "tool_format": "glm4_moe"},
)

register_template(
    name="glm4_7",
    description="GLM-4.7 with reasoning (<think>…</think>, a bare </think> when not reasoning)",
    thought_words=("<think>", "</think>"),
    empty_thought_words="</think>",
    **{**_GLM, "tool_format": "glm4_moe"},
)

register_template(
    name="aeva",
    description="Aeva, a GLM-4.7 fine-tune (GLM-4.7 layout with Aeva's default system prompt)",
    thought_words=("<think>", "</think>"),
    empty_thought_words="</think>",
    default_system=(
        "You are an AI assistant named Aeva created by Zongzhi Lou. "
        "Your answer should be friendly, unbiased, faithful, informative and detailed."
    ),
    **{**_GLM, "tool_format": "glm4_moe"},
)

# GLM-4.1V / 4.5V: reasoning answers close with </answer>, which also stops generation.
register_media_variant("glm_ocr", "glm4", mm_plugin="glm4v", description="GLM-OCR (GLM-4 layout) reading images")
register_media_variant("glm4v", "glmz1", mm_plugin="glm4v", stop_words=["<|user|>", "<|observation|>", "</answer>"],
                       description="GLM-4.1V with reasoning (GLM-4 layout) and images")
register_media_variant("glm4_5v", "glm4_moe", mm_plugin="glm4v",
                       stop_words=["<|user|>", "<|observation|>", "</answer>"],
                       description="GLM-4.5V / 4.6V with reasoning (GLM-4.5 layout) and images")
