"""Tool-calling formats: how tools are described to the model, how its calls are written, and how they are read back.

Each format is a family's own convention (Qwen/Hermes `<tool_call>` JSON, Llama 3 JSON, Mistral `[TOOL_CALLS]`, GLM-4
`name\\n{args}`, the markup of Qwen 3.5, GLM-4.5, Seed-OSS, MiniMax, LFM2 and Gemma 4), plus a ReAct-style
`Action:` / `Action Input:` default for families that have none. `parse_calls` inverts `format_calls`.
"""

from engine.templates.tools.base import ToolFormat
from engine.templates.tools.json_formats import (
    AutoFormat,
    Glm4Format,
    LingFormat,
    Llama3Format,
    MiniMax1Format,
    MistralFormat,
    Phi4MiniFormat,
    QwenFormat,
    ReactFormat,
)
from engine.templates.tools.markup_formats import (
    Gemma4Format,
    Glm4MoeFormat,
    Lfm2Format,
    MiniMax2Format,
    Qwen35Format,
    SeedOssFormat,
)

TOOL_FORMATS: dict[str, ToolFormat] = {
    fmt.name: fmt
    for fmt in (
        ReactFormat(), Phi4MiniFormat(), QwenFormat(), LingFormat(), Llama3Format(), MistralFormat(), Glm4Format(),
        MiniMax1Format(), Qwen35Format(), Glm4MoeFormat(), SeedOssFormat(), MiniMax2Format(), Lfm2Format(),
        Gemma4Format(), AutoFormat(),
    )
}  # fmt: skip


def get_tool_format(name: str) -> ToolFormat:
    """The tool format registered as `name`."""
    return TOOL_FORMATS[name]


__all__ = ["TOOL_FORMATS", "ToolFormat", "get_tool_format"]
