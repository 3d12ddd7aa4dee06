"""Tool-calling formats: how tools are described to the model, how its calls are written, and how they are read back.

Each format is the family's own convention (Qwen/Hermes `<tool_call>` tags, Llama 3 JSON, Mistral `[TOOL_CALLS]`,
GLM-4 `name\\n{args}`), plus a ReAct-style `Action:` / `Action Input:` default for families that have none.
`parse_calls` inverts `format_calls`, so a model trained on one reads back with the other.
"""

from __future__ import annotations

import json
import re

from engine.errors import DataError

_DECODER = json.JSONDecoder()


def _dumps(value: object, indent: int | None = None) -> str:
    # ensure_ascii=False and the default separators match what HF chat templates emit with `tojson`.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _wrapped(tool: dict) -> dict:
    return {"type": "function", "function": tool}


def _call(name: object, arguments: object) -> dict | None:
    if not isinstance(name, str) or not name:
        return None
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    return {"name": name, "arguments": arguments if arguments is not None else {}}


def _calls_from_json(payload: object, args_keys: tuple[str, ...]) -> list[dict] | None:
    items = payload if isinstance(payload, list) else [payload]
    calls = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            return None
        arguments = next((item[key] for key in args_keys if key in item), {})
        call = _call(item["name"], arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


class ToolFormat:
    """One family's tool convention; subclasses fill in the three methods."""

    name = ""

    def describe(self, tools: list[dict]) -> str:
        """The text that tells the model which tools exist (added to the system prompt)."""
        raise NotImplementedError

    def format_calls(self, calls: list[dict]) -> str:
        """The reply text of a turn that calls `calls` (each `{"name", "arguments"}`)."""
        raise NotImplementedError

    def parse_calls(self, text: str) -> list[dict] | None:
        """The calls in a generated reply, or None when the reply calls no tool."""
        raise NotImplementedError


class ReactFormat(ToolFormat):
    """Plain-text `Action:` / `Action Input:` lines, for families without a native tool format."""

    name = "default"
    _action = re.compile(r"Action:[ \t]*([^\n]+?)[ \t]*\n[ \t]*Action Input:[ \t]*")

    def describe(self, tools: list[dict]) -> str:
        lines = ["You can use the following tools:"]
        for tool in tools:
            lines.append(f"- {tool['name']}: {tool.get('description', '')}".rstrip())
            lines.append(f"  Arguments (JSON schema): {_dumps(tool.get('parameters', {}))}")
        lines.append("")
        lines.append("To call a tool, reply with exactly these lines (repeat them to call several tools):")
        lines.append("Action: the tool name")
        lines.append("Action Input: the arguments as a JSON object")
        return "\n".join(lines)

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(f"Action: {c['name']}\nAction Input: {_dumps(c['arguments'])}" for c in calls)

    def parse_calls(self, text: str) -> list[dict] | None:
        calls = []
        for match in self._action.finditer(text):
            start = match.end()
            while text.startswith("`", start):  # models sometimes fence the JSON in backticks
                start += 1
            try:
                arguments, _ = _DECODER.raw_decode(text, start)
            except ValueError:
                return None
            call = _call(match.group(1).strip(), arguments)
            if call is None:
                return None
            calls.append(call)
        return calls or None


class QwenFormat(ToolFormat):
    """Qwen 2.5 / Qwen 3 (Hermes) style: JSON objects inside `<tool_call>` tags."""

    name = "qwen"
    _block = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join("\n" + _dumps(_wrapped(tool)) for tool in tools)
        return (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
            f"{listing}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(
            "<tool_call>\n" + _dumps({"name": c["name"], "arguments": c["arguments"]}) + "\n</tool_call>"
            for c in calls
        )

    def parse_calls(self, text: str) -> list[dict] | None:
        calls = []
        for match in self._block.finditer(text):
            try:
                found = _calls_from_json(json.loads(match.group(1)), ("arguments", "parameters"))
            except ValueError:
                return None
            if found is None:
                return None
            calls.extend(found)
        return calls or None


class Llama3Format(ToolFormat):
    """Llama 3.1+ JSON tool calling: the whole reply is `{"name": ..., "parameters": {...}}`."""

    name = "llama3"

    def describe(self, tools: list[dict]) -> str:
        listing = "".join(_dumps(_wrapped(tool), indent=4) + "\n\n" for tool in tools)
        return (
            "You have access to the following functions. To call a function, please respond with JSON for a "
            'function call. Respond in the format {"name": function name, "parameters": dictionary of argument '
            "name and its value}. Do not use variables.\n\n" + listing.rstrip("\n")
        )

    def format_calls(self, calls: list[dict]) -> str:
        objects = [{"name": c["name"], "parameters": c["arguments"]} for c in calls]
        return _dumps(objects[0] if len(objects) == 1 else objects)

    def parse_calls(self, text: str) -> list[dict] | None:
        text = text.strip().removeprefix("<|python_tag|>").strip()
        if not text.startswith(("{", "[")):
            return None
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        return _calls_from_json(payload, ("parameters", "arguments"))


class MistralFormat(ToolFormat):
    """Mistral v0.3: `[AVAILABLE_TOOLS]` before the chat, replies `[TOOL_CALLS] [{"name", "arguments"}, ...]`."""

    name = "mistral"

    def describe(self, tools: list[dict]) -> str:
        return "[AVAILABLE_TOOLS] " + _dumps([_wrapped(tool) for tool in tools]) + "[/AVAILABLE_TOOLS]"

    def format_calls(self, calls: list[dict]) -> str:
        return "[TOOL_CALLS] " + _dumps([{"name": c["name"], "arguments": c["arguments"]} for c in calls])

    def parse_calls(self, text: str) -> list[dict] | None:
        marker = text.find("[TOOL_CALLS]")
        if marker < 0:
            return None
        rest = text[marker + len("[TOOL_CALLS]") :].lstrip()
        try:
            payload, _ = _DECODER.raw_decode(rest)
        except ValueError:
            return None
        return _calls_from_json(payload, ("arguments", "parameters"))


class Glm4Format(ToolFormat):
    """GLM-4: the reply is the function name on one line and its JSON arguments on the next; one call per turn."""

    name = "glm4"
    _name = re.compile(r"[A-Za-z_][\w.\-]*")

    def describe(self, tools: list[dict]) -> str:
        sections = "".join(
            f"\n\n## {tool['name']}\n\n{_dumps(tool, indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
            for tool in tools
        )
        return "# 可用工具" + sections

    def format_calls(self, calls: list[dict]) -> str:
        if len(calls) > 1:
            raise DataError("parallel_tool_calls_unsupported", tool_format=self.name, count=len(calls))
        return f"{calls[0]['name']}\n{_dumps(calls[0]['arguments'])}"

    def parse_calls(self, text: str) -> list[dict] | None:
        name, newline, rest = text.strip().partition("\n")
        if not newline or not self._name.fullmatch(name.strip()):
            return None
        try:
            arguments = json.loads(rest.strip())
        except ValueError:
            return None
        return [c] if isinstance(arguments, dict) and (c := _call(name.strip(), arguments)) else None


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


TOOL_FORMATS: dict[str, ToolFormat] = {
    fmt.name: fmt for fmt in (ReactFormat(), QwenFormat(), Llama3Format(), MistralFormat(), Glm4Format(), AutoFormat())
}


def get_tool_format(name: str) -> ToolFormat:
    """The tool format registered as `name`."""
    return TOOL_FORMATS[name]
