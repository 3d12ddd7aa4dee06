"""OpenAI's chat-completions request body, and its messages turned into the studio's canonical conversation.

OpenAI roles map onto the template renderer's: `system`/`developer` → the system prompt, `user` → user,
`assistant` → assistant (or `function` when it carries `tool_calls`), `tool`/`function` → observation.
Consecutive messages of one role are joined, as several tool results answering one call are.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.inference.backend import InferenceError

MAX_CHOICES = 16
MAX_STOP_STRINGS = 16
PROMPT_SIDE = ("user", "observation")


class FunctionCall(BaseModel):
    """A call the assistant made: the tool's name and its arguments as a JSON string."""

    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(BaseModel):
    """One entry of an assistant message's `tool_calls`."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(BaseModel):
    """A part of a message's content; only `text` parts can be read by a text model."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message as OpenAI clients send it."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(BaseModel):
    """A tool's name, description and JSON-schema parameters."""

    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    """One entry of the request's `tools`."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class StreamOptions(BaseModel):
    """`stream_options`: `include_usage` adds a last chunk with the token counts."""

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The body of `POST /v1/chat/completions` (fields a text model cannot honour are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=MAX_CHOICES)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    repetition_penalty: float | None = Field(None, gt=0.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    skip_special_tokens: bool | None = None
    enable_thinking: bool | None = None
    chat_template_kwargs: dict[str, Any] | None = None


def _text(message: ChatMessage, number: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if part.type != "text" or part.text is None:
            raise InferenceError("api_content_unsupported", number=number, kind=part.type)
        texts.append(part.text)
    return "".join(texts)


def _calls(message: ChatMessage, number: int) -> str:
    calls = []
    for call in message.tool_calls or []:
        arguments = call.function.arguments
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                raise InferenceError("api_tool_arguments", number=number, name=call.function.name) from None
        calls.append({"name": call.function.name, "arguments": arguments})
    return json.dumps(calls, ensure_ascii=False)


def to_conversation(messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], str | None]:
    """(canonical messages, system prompt) for the template renderer; the reply must be due (prompt side last)."""
    system_parts: list[str] = []
    converted: list[dict[str, Any]] = []
    for number, message in enumerate(messages, start=1):
        if message.role in ("system", "developer"):
            system_parts.append(_text(message, number))
            continue
        if message.role == "assistant" and message.tool_calls:
            role, content = "function", _calls(message, number)
        elif message.role == "assistant":
            role, content = "assistant", _text(message, number)
        elif message.role in ("tool", "function"):
            role, content = "observation", _text(message, number)
        else:
            role, content = "user", _text(message, number)
        previous = converted[-1] if converted else None
        if previous is not None and previous["role"] == role and role != "function":
            previous["content"] += "\n" + content
        elif previous is not None and previous["role"] == role:  # two tool-calling turns in a row: one turn
            previous["content"] = json.dumps(json.loads(previous["content"]) + json.loads(content), ensure_ascii=False)
        else:
            converted.append({"role": role, "content": content})
    if not converted or converted[-1]["role"] not in PROMPT_SIDE:
        raise InferenceError("api_reply_not_due")
    return converted, "\n\n".join(system_parts) if system_parts else None


def request_tools(request: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    """The tool definitions to render into the prompt (none when `tool_choice` is "none")."""
    if not request.tools or request.tool_choice == "none":
        return None
    return [tool.function.model_dump(exclude_none=True) for tool in request.tools]


def request_sampling(request: ChatCompletionRequest) -> dict[str, Any]:
    """The sampling overrides a request makes (None: the config's value)."""
    stop = [request.stop] if isinstance(request.stop, str) else request.stop
    if stop is not None and len(stop) > MAX_STOP_STRINGS:
        raise InferenceError("api_too_many_stops", count=len(stop), limit=MAX_STOP_STRINGS)
    return {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "max_new_tokens": request.max_completion_tokens or request.max_tokens,
        "repetition_penalty": request.repetition_penalty,
        "skip_special_tokens": request.skip_special_tokens,
        "stop": tuple(stop) if stop is not None else None,
        "n": request.n,
        "seed": request.seed,
    }


def request_thinking(request: ChatCompletionRequest) -> bool | None:
    """Thinking mode for reasoning templates: `enable_thinking`, or vLLM's `chat_template_kwargs`."""
    if request.enable_thinking is not None:
        return request.enable_thinking
    value = (request.chat_template_kwargs or {}).get("enable_thinking")
    return value if isinstance(value, bool) else None


def tool_calls_message(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parsed calls in OpenAI's `tool_calls` shape (arguments as a JSON string, a fresh id per call)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
        }
        for call in calls
    ]
