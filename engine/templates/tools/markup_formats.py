"""Tool formats whose calls are markup around each argument: Qwen 3.5, GLM-4.5+, Seed-OSS, MiniMax-M2, LFM2, Gemma 4.

The tool descriptions are worded exactly as LLaMA-Factory 0.9.5 words them. Calls follow the models' official chat
templates; where LLaMA-Factory writes them differently (GLM-4.5's closing tag, MiniMax-M2's wrapper) docs/templates.md
says so.
"""

from __future__ import annotations

import ast
import json
import re

from engine.templates.tools.base import ToolFormat, dumps, make_call, parse_value, value_text, wrapped


def _items(call: dict) -> list[tuple[str, object]]:
    """A call's arguments as (key, value) pairs (none when they are not an object)."""
    arguments = call["arguments"]
    return list(arguments.items()) if isinstance(arguments, dict) else []


def _markup_calls(text: str, block: re.Pattern, parameter: re.Pattern) -> list[dict] | None:
    """Calls found by `block` (groups: name, body), each argument by `parameter` (groups: key, value)."""
    calls = []
    for name, body in block.findall(text):
        arguments = {key.strip(): parse_value(value.strip()) for key, value in parameter.findall(body)}
        call = make_call(name.strip(), arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


class MarkupFormat(ToolFormat):
    """A format whose calls are blocks (`_block`: name, body) holding parameters (`_parameter`: key, value)."""

    _block: re.Pattern[str]
    _parameter: re.Pattern[str]

    def parse_calls(self, text: str) -> list[dict] | None:
        return _markup_calls(text, self._block, self._parameter)


class Qwen35Format(MarkupFormat):
    """Qwen 3.5 / 3.6 (Qwen3-Coder style): `<tool_call><function=name><parameter=key>value</parameter>...`."""

    name = "qwen3_5"
    lead = "\n\n"
    _block = re.compile(r"<tool_call>\s*<function=\s*([^\s<>]+)\s*>(.*?)</function>\s*</tool_call>", re.DOTALL)
    _parameter = re.compile(r"<parameter=\s*([^\s<>]+)\s*>(.*?)</parameter>", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join("\n" + dumps(tool) for tool in tools)
        return self.lead + (
            f"# Tools\n\nYou have access to the following functions:\n\n<tools>{listing}\n</tools>\n\n"
            "If you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
            "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
            "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\n"
            "multiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
            "- Function calls MUST follow the specified format: an inner <function=...></function> block must be "
            "nested within <tool_call></tool_call> XML tags\n- Required parameters MUST be specified\n"
            "- You may provide optional reasoning for your function call in natural language BEFORE the function "
            "call, but NOT after\n- If there is no function call available, answer the question like normal with "
            "your current knowledge and do not tell the user about function calls\n</IMPORTANT>"
        )

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(
            f"<tool_call>\n<function={c['name']}>"
            + "".join(f"\n<parameter={key}>\n{value_text(value)}\n</parameter>" for key, value in _items(c))
            + "\n</function>\n</tool_call>"
            for c in calls
        )


class Glm4MoeFormat(MarkupFormat):
    """GLM-4.5 / 4.6 / 4.7: `<tool_call>name` then `<arg_key>`/`<arg_value>` pairs, closed by `</tool_call>`."""

    name = "glm4_moe"
    lead = "\n\n"
    _block = re.compile(r"<tool_call>\s*([^\s<]+)(.*?)</tool_call>", re.DOTALL)
    _parameter = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join("\n" + dumps(wrapped(tool)) for tool in tools)
        return self.lead + (
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            f"You are provided with function signatures within <tools></tools> XML tags:\n<tools>{listing}\n</tools>"
            "\n\nFor each function call, output the function name and arguments within the following XML format:"
            "\n<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>{arg-value-1}</arg_value>"
            "\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>{arg-value-2}</arg_value>\n...\n</tool_call>\n"
        )

    def format_calls(self, calls: list[dict]) -> str:
        return "".join(
            f"\n<tool_call>{c['name']}"
            + "".join(
                f"\n<arg_key>{key}</arg_key>\n<arg_value>{value_text(value)}</arg_value>"
                for key, value in _items(c)
            )
            + "\n</tool_call>"
            for c in calls
        )


class SeedOssFormat(MarkupFormat):
    """ByteDance Seed-OSS: `<seed:tool_call><function=name><parameter=key>value</parameter>...`."""

    name = "seed_oss"
    _block = re.compile(r"<seed:tool_call>\s*<function=\s*([^\s<>]+)\s*>(.*?)</function>\s*</seed:tool_call>",
                        re.DOTALL)
    _parameter = re.compile(r"<parameter=\s*([^\s<>]+)\s*>(.*?)</parameter>", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        return (
            "system\nYou are Doubao, a helpful AI assistant. You may call one or more functions to assist with the "
            "user query.Tool List:\nYou are authorized to use the following tools (described in JSON Schema format). "
            "Before performing any task, you must decide how to call them based on the descriptions and parameters "
            f"of these tools.\n{dumps(tools)}\n工具调用请遵循如下格式:\n<seed:tool_call>\n<function=example_function_name>"
            "\n<parameter=example_parameter_1>value_1</parameter>\n<parameter=example_parameter_2>This is the value "
            "for the second parameter\nthat can span\nmultiple lines</parameter>\n</function>\n</seed:tool_call>\n"
        )

    def format_calls(self, calls: list[dict]) -> str:
        return "\n".join(
            f"<seed:tool_call>\n<function={c['name']}>\n"
            + "".join(f"<parameter={key}>{value_text(value)}</parameter>\n" for key, value in _items(c))
            + "</function>\n</seed:tool_call>"
            for c in calls
        )


class MiniMax2Format(MarkupFormat):
    """MiniMax-M2: `<minimax:tool_call><invoke name="..."><parameter name="...">value</parameter>...`."""

    name = "minimax2"
    lead = "\n\n"
    _block = re.compile(r"<invoke name=\"(.*?)\">(.*?)</invoke>", re.DOTALL)
    _parameter = re.compile(r"<parameter name=\"(.*?)\">(.*?)</parameter>", re.DOTALL)

    def describe(self, tools: list[dict]) -> str:
        listing = "".join("<tool>" + dumps(tool) + "</tool>\n" for tool in tools)
        return self.lead + (
            "# Tools\n\nYou may call one or more tools to assist with the user query.\n"
            f"Here are the tools available in JSONSchema format:\n\n<tools>\n{listing}</tools>\n\n"
            "When making tool calls, use XML format to invoke tools and pass parameters:\n\n<minimax:tool_call>\n"
            '<invoke name="tool-name-1">\n<parameter name="param-key-1">param-value-1</parameter>\n'
            '<parameter name="param-key-2">param-value-2</parameter>\n...\n</invoke>\n</minimax:tool_call>'
        )

    def format_calls(self, calls: list[dict]) -> str:
        invokes = "".join(
            f'<invoke name="{c["name"]}">\n'
            + "".join(f'<parameter name="{key}">{value_text(value)}</parameter>\n' for key, value in _items(c))
            + "</invoke>\n"
            for c in calls
        )
        return f"<minimax:tool_call>\n{invokes}</minimax:tool_call>"


class Lfm2Format(ToolFormat):
    """Liquid LFM2: Python-style calls `[name(key="value", ...)]` between tool-call tokens."""

    name = "lfm2"
    _block = re.compile(r"<\|tool_call_start\|>(.*?)<\|tool_call_end\|>", re.DOTALL)
    _literals = {"true": True, "false": False, "null": None}

    def describe(self, tools: list[dict]) -> str:
        return f"List of tools: <|tool_list_start|>{dumps(tools)}<|tool_list_end|>"

    def format_calls(self, calls: list[dict]) -> str:
        def argument(key: str, value: object) -> str:
            return f'{key}="{value}"' if isinstance(value, str) else f"{key}={dumps(value)}"

        written = [
            f"{c['name']}(" + ", ".join(argument(key, value) for key, value in _items(c)) + ")"
            for c in calls
        ]
        return "<|tool_call_start|>[" + ", ".join(written) + "]<|tool_call_end|>"

    def _value(self, node: ast.AST) -> object:
        if isinstance(node, ast.Name) and node.id in self._literals:
            return self._literals[node.id]
        return ast.literal_eval(node)

    def parse_calls(self, text: str) -> list[dict] | None:
        match = self._block.search(text)
        if not match:
            return None
        try:
            tree = ast.parse(match.group(1).strip(), mode="eval").body
            nodes = tree.elts if isinstance(tree, ast.List) else [tree]
            calls = []
            for node in nodes:
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                    return None
                arguments = {kw.arg: self._value(kw.value) for kw in node.keywords}
                calls.append({"name": node.func.id, "arguments": arguments})
        except (SyntaxError, ValueError):
            return None
        return calls or None


class Gemma4Format(ToolFormat):
    """Gemma 4: `declaration:` lines for tools, `<|tool_call>call:name{key:value}<tool_call|>` calls."""

    name = "gemma4"
    _quote = '<|"|>'
    _call = re.compile(r"<\|tool_call>call:([^{\s]+)\{(.*?)\}<tool_call\|>", re.DOTALL)

    def _quoted(self, text: object) -> str:
        return f"{self._quote}{text}{self._quote}"

    def _declaration(self, tool: dict) -> str:
        text = f"declaration:{tool['name']}{{description:{self._quoted(tool.get('description', ''))}"
        parameters = tool.get("parameters")
        if parameters:
            parts = []
            if parameters.get("properties"):
                fields = []
                for name, spec in parameters["properties"].items():
                    items = [f"description:{self._quoted(spec['description'])}"] if spec.get("description") else []
                    if spec.get("type"):
                        items.append(f"type:{self._quoted(str(spec['type']).upper())}")
                    fields.append(f"{name}:{{{','.join(items)}}}")
                parts.append(f"properties:{{{','.join(fields)}}}")
            if parameters.get("required"):
                parts.append("required:[" + ",".join(self._quoted(item) for item in parameters["required"]) + "]")
            if parameters.get("type"):
                parts.append(f"type:{self._quoted(str(parameters['type']).upper())}")
            text += f",parameters:{{{','.join(parts)}}}"
        response = tool.get("response")
        if response:
            parts = [f"description:{self._quoted(response['description'])}"] if response.get("description") else []
            if str(response.get("type", "")).upper() == "OBJECT":
                parts.append(f"type:{self._quoted('OBJECT')}")
            text += f",response:{{{','.join(parts)}}}"
        return text + "}"

    def describe(self, tools: list[dict]) -> str:
        return "\n".join(self._declaration(tool) for tool in tools)

    def _value(self, value: object) -> str:
        if isinstance(value, str):
            return self._quoted(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return "{" + ",".join(f"{key}:{self._value(value[key])}" for key in sorted(value)) + "}"
        if isinstance(value, list | tuple):
            return "[" + ",".join(self._value(item) for item in value) + "]"
        return "null" if value is None else str(value)

    def format_calls(self, calls: list[dict]) -> str:
        return "".join(
            f"<|tool_call>call:{c['name']}{self._value(c['arguments'])}<tool_call|>"
            if isinstance(c["arguments"], dict)
            else f"<|tool_call>call:{c['name']}{{{self._value(c['arguments'])}}}<tool_call|>"
            for c in calls
        )

    def parse_calls(self, text: str) -> list[dict] | None:
        calls = []
        for name, body in self._call.findall(text):
            as_json = re.sub(r"<\|\"\|>(.*?)<\|\"\|>", lambda m: json.dumps(m.group(1), ensure_ascii=False),
                             "{" + body + "}", flags=re.DOTALL)
            as_json = re.sub(r"(^|[{\s,])([A-Za-z_]\w*)(\s*:)", r'\1"\2"\3', as_json)
            try:
                arguments = json.loads(as_json)
            except ValueError:
                return None
            calls.append({"name": name.strip(), "arguments": arguments})
        return calls or None
