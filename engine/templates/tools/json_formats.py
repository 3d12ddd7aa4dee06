"""Tool formats whose calls are JSON or plain lines: the ReAct-style default, Phi-4-mini, Qwen/Hermes, Ling, Llama 3,
Mistral, GLM-4, MiniMax-M1.

The tool descriptions are worded exactly as LLaMA-Factory 0.9.5 words them (models fine-tuned there have seen these
words); calls are written as those models write them, and read back leniently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from engine.errors import DataError
from engine.templates.tools.base import DECODER, ToolFormat, calls_from_json, dumps, make_call, wrapped


class ReactFormat(ToolFormat):
    """Plain-text `Action:` / `Action Input:` lines, for families without a native tool format."""

    name = "default"
    _action = re.compile(r"Action:[ \t]*([^\n]+?)[ \t]*\n[ \t]*Action Input:[ \t]*")

    @staticmethod
    def _argument_lines(parameters: dict) -> str:
        required = parameters.get("required") or []
        lines = []
        for name, spec in (parameters.get("properties") or {}).items():
            notes = ", required" if name in required else ""
            extra = ""
            if spec.get("enum"):
                extra += ", should be one of [" + ", ".join(str(choice) for choice in spec["enum"]) + "]"
            if spec.get("items"):
                extra += ", where each item should be " + str(spec["items"].get("type", ""))
            lines.append(f"  - {name} ({spec.get('type', '')}{notes}): {spec.get('description', '')}{extra}\n")
        return "".join(lines)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join(
            f"> Tool Name: {tool['name']}\nTool Description: {tool.get('description', '')}\nTool Args:\n"
            f"{self._argument_lines(tool.get('parameters') or {})}\n"
            for tool in tools
        )
        names = ", ".join(tool["name"] for tool in tools)
        return (
            f"You have access to the following tools:\n{listing}Use the following format if using a tool:\n```\n"
            f"Action: tool name (one of [{names}])\nAction Input: the input to the tool, in a JSON format "
            'representing the kwargs (e.g. ```{"input": "hello world", "num_beams": 5}```)\n```\n'
        )

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(f"Action: {c['name']}\nAction Input: {dumps(c['arguments'])}" for c in calls)

    def parse_calls(self, text: str) -> list[dict] | None:
        calls = []
        for match in self._action.finditer(text):
            start = match.end()
            while text.startswith("`", start):  # models sometimes fence the JSON in backticks
                start += 1
            try:
                arguments, _ = DECODER.raw_decode(text, start)
            except ValueError:
                return None
            call = make_call(match.group(1).strip(), arguments)
            if call is None:
                return None
            calls.append(call)
        return calls or None


_HERMES_TOOLS = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>{listing}\n</tools>\n\n"
)


class Phi4MiniFormat(ReactFormat):
    """Phi-4-mini: the tool list as JSON between <|tool|> and <|/tool|>; calls as the default format writes them."""

    name = "phi4_mini"

    def describe(self, tools: list[dict]) -> str:
        return "<|tool|>" + dumps(tools) + "<|/tool|>"


class QwenFormat(ToolFormat):
    """Qwen 2.5 / Qwen 3 (Hermes) style: JSON objects inside `<tool_call>` tags."""

    name = "qwen"
    lead = "\n\n"
    _block = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

    def _body(self, tools: list[dict]) -> str:
        listing = "".join("\n" + dumps(wrapped(tool)) for tool in tools)
        return _HERMES_TOOLS.replace("{listing}", listing) + (
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )

    def describe(self, tools: list[dict]) -> str:
        return self.lead + self._body(tools)

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(
            "<tool_call>\n" + dumps({"name": c["name"], "arguments": c["arguments"]}) + "\n</tool_call>" for c in calls
        )

    def parse_calls(self, text: str) -> list[dict] | None:
        return _calls_from_json_texts(match.group(1) for match in self._block.finditer(text))


class LingFormat(QwenFormat):
    """Ant Ling 2 (bailing_v2): the Qwen tool text, switched to non-reasoning mode."""

    name = "ling"
    lead = ""

    def describe(self, tools: list[dict]) -> str:
        return self._body(tools) + "\ndetailed thinking off"


class Llama3Format(ToolFormat):
    """Llama 3.1+ JSON tool calling: the whole reply is `{"name": ..., "parameters": {...}}`."""

    name = "llama3"
    # The official template's default date; a fixed date keeps tokenized data the same from day to day.
    date = "26 Jul 2024"

    def describe(self, tools: list[dict]) -> str:
        listing = "".join(dumps(wrapped(tool), indent=4) + "\n\n" for tool in tools)
        return (
            f"Cutting Knowledge Date: December 2023\nToday Date: {self.date}\n\n"
            "You have access to the following functions. To call a function, please respond with JSON for a "
            'function call. Respond in the format {"name": function name, "parameters": dictionary of argument '
            "name and its value}. Do not use variables.\n\n" + listing
        )

    def format_calls(self, calls: list[dict]) -> str:
        objects = [{"name": c["name"], "parameters": c["arguments"]} for c in calls]
        return dumps(objects[0] if len(objects) == 1 else objects)

    def parse_calls(self, text: str) -> list[dict] | None:
        text = text.strip().removeprefix("<|python_tag|>").strip()
        if not text.startswith(("{", "[")):
            return None
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        return calls_from_json(payload, ("parameters", "arguments"))


class MistralFormat(ToolFormat):
    """Mistral: `[AVAILABLE_TOOLS]` in the system text, calls a JSON list (the template writes `[TOOL_CALLS]`)."""

    name = "mistral"

    def describe(self, tools: list[dict]) -> str:
        return "[AVAILABLE_TOOLS] " + dumps([wrapped(tool) for tool in tools]) + "[/AVAILABLE_TOOLS]"

    def format_calls(self, calls: list[dict]) -> str:
        return dumps([{"name": c["name"], "arguments": c["arguments"]} for c in calls])

    def parse_calls(self, text: str) -> list[dict] | None:
        marker = text.find("[TOOL_CALLS]")
        rest = text[marker + len("[TOOL_CALLS]") :] if marker >= 0 else text
        rest = rest.lstrip()
        if marker < 0 and not rest.startswith("[{"):  # without the marker (decoded away) only a list of calls
            return None
        try:
            payload, _ = DECODER.raw_decode(rest)
        except ValueError:
            return None
        return calls_from_json(payload, ("arguments", "parameters"))


class Glm4Format(ToolFormat):
    """GLM-4: the reply is the function name on one line and its JSON arguments on the next; one call per turn."""

    name = "glm4"
    _name = re.compile(r"[A-Za-z_][\w.\-]*")

    def describe(self, tools: list[dict]) -> str:
        sections = "".join(
            f"\n\n## {tool['name']}\n\n{dumps(tool, indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
            for tool in tools
        )
        return (
            "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
            "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具" + sections
        )

    def format_calls(self, calls: list[dict]) -> str:
        if len(calls) > 1:
            raise DataError("parallel_tool_calls_unsupported", tool_format=self.name, count=len(calls))
        return f"{calls[0]['name']}\n{dumps(calls[0]['arguments'])}"

    def parse_calls(self, text: str) -> list[dict] | None:
        name, newline, rest = text.strip().partition("\n")
        if not newline or not self._name.fullmatch(name.strip()):
            return None
        try:
            arguments = json.loads(rest.strip())
        except ValueError:
            return None
        return [c] if isinstance(arguments, dict) and (c := make_call(name.strip(), arguments)) else None


class MiniMax1Format(ToolFormat):
    """MiniMax-M1: one JSON call per line inside `<tool_calls>` tags."""

    name = "minimax1"
    _block = re.compile(r"<tool_calls>\s*(.+?)\s*</tool_calls>", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join(dumps(tool) + "\n" for tool in tools)
        return (
            f"You are provided with these tools:\n<tools>\n{listing}</tools>\n\n"
            "If you need to call tools, please respond with <tool_calls></tool_calls> XML tags, and provide "
            "tool-name and json-object of arguments, following the format below:\n<tool_calls>\n"
            '{"name": <tool-name-1>, "arguments": <args-json-object-1>}\n...\n</tool_calls>'
        )

    def format_calls(self, calls: list[dict]) -> str:
        lines = "\n".join(dumps({"name": c["name"], "arguments": c["arguments"]}) for c in calls)
        return f"<tool_calls>\n{lines}\n</tool_calls>"

    def parse_calls(self, text: str) -> list[dict] | None:
        match = self._block.search(text)
        if not match:
            return None
        return _calls_from_json_texts(line for line in match.group(1).splitlines() if line.strip())


class AutoFormat(ToolFormat):
    """For the `tokenizer` pseudo-template: reads back whichever known format the model wrote."""

    name = "auto"
    _readers = (QwenFormat(), MistralFormat(), Llama3Format(), ReactFormat())

    def describe(self, tools: list[dict]) -> str:
        return ReactFormat().describe(tools)

    def format_calls(self, calls: list[dict]) -> str:
        return QwenFormat().format_calls(calls)

    def parse_calls(self, text: str) -> list[dict] | None:
        for reader in self._readers:
            calls = reader.parse_calls(text)
            if calls is not None:
                return calls
        return None


def _calls_from_json_texts(texts: Iterable[str]) -> list[dict] | None:
    """The calls in some JSON texts (each one call or a list of them); None when any text is not a call."""
    calls = []
    for text in texts:
        try:
            found = calls_from_json(json.loads(text), ("arguments", "parameters"))
        except ValueError:
            return None
        if found is None:
            return None
        calls.extend(found)
    return calls or None
