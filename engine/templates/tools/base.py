"""What every tool-calling format provides, and the JSON helpers the formats share."""

from __future__ import annotations

import json

DECODER = json.JSONDecoder()


def dumps(value: object, indent: int | None = None) -> str:
    # ensure_ascii=False and the default separators match what HF chat templates emit with `tojson`.
    return json.dumps(value, ensure_ascii=False, indent=indent)


def wrapped(tool: dict) -> dict:
    """A plain tool definition in the OpenAI shape `{"type": "function", "function": {...}}`."""
    return {"type": "function", "function": tool}


def value_text(value: object) -> str:
    """An argument value written inside markup: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else dumps(value)


def parse_value(text: str) -> object:
    """An argument value read back from markup: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def make_call(name: object, arguments: object) -> dict | None:
    """A `{"name", "arguments"}` call, or None when the name is missing or the arguments are not JSON."""
    if not isinstance(name, str) or not name:
        return None
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    return {"name": name, "arguments": arguments if arguments is not None else {}}


def calls_from_json(payload: object, args_keys: tuple[str, ...]) -> list[dict] | None:
    """Calls from a decoded JSON object or list of objects with a name and arguments under one of `args_keys`."""
    items = payload if isinstance(payload, list) else [payload]
    calls = []
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            return None
        arguments = next((item[key] for key in args_keys if key in item), {})
        call = make_call(item["name"], arguments)
        if call is None:
            return None
        calls.append(call)
    return calls or None


class ToolFormat:
    """One family's tool convention; subclasses fill in the three methods.

    `describe` gives the text that is appended to the system prompt. A format whose text opens with a blank line
    (to part it from the system prompt) names that opening in `lead`: it is left out when there is no system
    prompt to part from, as the official templates of those families do.
    """

    name = ""
    lead = ""

    def describe(self, tools: list[dict]) -> str:
        """The text that tells the model which tools exist (appended to the system prompt)."""
        raise NotImplementedError

    def format_calls(self, calls: list[dict]) -> str:
        """The reply text of a turn that calls `calls` (each `{"name", "arguments"}`)."""
        raise NotImplementedError

    def parse_calls(self, text: str) -> list[dict] | None:
        """The calls in a generated reply, or None when the reply calls no tool."""
        raise NotImplementedError
