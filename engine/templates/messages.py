"""The canonical conversation the data loader hands over: role checks, tool lists and tool-call payloads.

Roles: `user` and `observation` (a tool result) are the prompt side; `assistant` and `function` (a reply that calls
tools, its content a JSON `{"name", "arguments"}` object or a list of them) are the response side. The sides
alternate, starting with the prompt side. The system prompt and the tool list travel beside the messages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import DataError

PROMPT_ROLES = ("user", "observation")
RESPONSE_ROLES = ("assistant", "function")


@dataclass(frozen=True)
class Message:
    """One checked message; `calls` holds the parsed tool calls of a `function` message."""

    role: str
    content: str
    calls: tuple[dict, ...] = ()

    @property
    def is_prompt(self) -> bool:
        """True for the roles the model reads (user, observation), False for the ones it writes."""
        return self.role in PROMPT_ROLES


def check_messages(messages: Sequence[Mapping[str, Any]], *, training: bool) -> list[Message]:
    """Validate roles and their order; `training` also requires the conversation to end with a reply."""
    if not messages:
        raise DataError("empty_conversation")
    checked: list[Message] = []
    for index, raw in enumerate(messages):
        role = raw.get("role") if isinstance(raw, Mapping) else None
        if role not in PROMPT_ROLES + RESPONSE_ROLES:
            raise DataError("unknown_message_role", number=index + 1, role=role)
        want_prompt = index % 2 == 0
        if (role in PROMPT_ROLES) != want_prompt:
            expected = "user or observation" if want_prompt else "assistant or function"
            raise DataError("misordered_messages", number=index + 1, role=role, expected=expected)
        content = raw.get("content")
        if role == "function":
            calls = parse_tool_calls(content, index)
            checked.append(Message(role, json.dumps(list(calls), ensure_ascii=False), calls))
            continue
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise DataError("invalid_message_content", number=index + 1, role=role, kind=type(content).__name__)
        checked.append(Message(role, content))
    if training and checked[-1].is_prompt:
        raise DataError("conversation_ends_with_prompt", role=checked[-1].role)
    return checked


def parse_tool_calls(content: Any, index: int = 0) -> tuple[dict, ...]:
    """A `function` message's content as `({"name": str, "arguments": ...}, ...)`."""
    payload = content
    try:
        if isinstance(content, str):
            payload = json.loads(content)
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            raise ValueError("the list of calls is empty")
        return tuple(_one_call(item) for item in items)
    except (ValueError, TypeError) as exc:
        raise DataError("invalid_function_call", number=index + 1, detail=str(exc)) from None


def _one_call(item: Any) -> dict:
    if isinstance(item, Mapping) and item.get("type") == "function" and isinstance(item.get("function"), Mapping):
        item = item["function"]  # OpenAI-style {"type": "function", "function": {...}}
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
        raise ValueError(f"a call must be an object with a non-empty string 'name', got {item!r}")
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        # OpenAI sends arguments as a JSON string; the formats below want the decoded value.
        arguments = json.loads(arguments) if arguments.strip() else {}
    return {"name": item["name"], "arguments": arguments}


def parse_tools(tools: str | Sequence[Mapping[str, Any]] | None) -> list[dict]:
    """The tool definitions as plain `{"name", "description", "parameters"}` dicts ([] when there are none)."""
    if tools is None or (isinstance(tools, str) and not tools.strip()):
        return []
    try:
        payload = json.loads(tools) if isinstance(tools, str) else tools
        items = [payload] if isinstance(payload, Mapping) else list(payload)
        result = []
        for item in items:
            if isinstance(item, Mapping) and item.get("type") == "function" and "function" in item:
                item = item["function"]
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise ValueError(f"a tool must be an object with a string 'name', got {item!r}")
            result.append(dict(item))
        return result
    except (ValueError, TypeError) as exc:
        raise DataError("invalid_tools", detail=str(exc)) from None
