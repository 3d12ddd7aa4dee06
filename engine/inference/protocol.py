"""OpenAI's chat-completions request body, and its messages turned into the studio's canonical conversation.

OpenAI roles map onto the template renderer's: `system`/`developer` → the system prompt, `user` → user,
`assistant` → assistant (or `function` when it carries `tool_calls`), `tool`/`function` → observation.
Consecutive messages of one role are joined, as several tool results answering one call are.

Media parts (`image_url`, `video_url` — vLLM's extension — and `input_audio`) become the placeholder of their kind
(`<image>`, `<video>`, `<audio>`) at their place in the text, and `request_media` collects what they hold, in the
same order: data URLs and base64 audio decoded to bytes (size-capped), http(s) URLs kept for the backend's loader.
A text-only request is read exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.data.media import EXTENSIONS, KINDS, PLACEHOLDERS
from engine.inference.backend import InferenceError

MAX_CHOICES = 16
MAX_STOP_STRINGS = 16
PROMPT_SIDE = ("user", "observation")
MEDIA_PARTS = {"image_url": "images", "video_url": "videos", "input_audio": "audios"}  # part type -> media kind
AUDIO_FORMATS = tuple(suffix[1:] for suffix in EXTENSIONS["audios"])  # `input_audio.format`: what the loader reads
MAX_MEDIA_ITEMS = 16  # per request: each one is decoded and held in memory until the reply is done
MAX_MEDIA_MB = 32  # per item, decoded


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
    """A part of a message's content: `text`, or a media part whose payload sits under its type's name
    (`image_url: {"url"}`, `video_url: {"url"}`, `input_audio: {"data", "format"}`), checked when it is read."""

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


def _part_kind(part: ContentPart, number: int) -> str | None:
    """The media kind a part carries (None for text); an unknown or empty part is refused."""
    if part.type == "text":
        if part.text is None:
            raise InferenceError("api_part_missing", number=number, kind="text", field="text")
        return None
    kind = MEDIA_PARTS.get(part.type)
    if kind is None:
        known = ", ".join(["text", *MEDIA_PARTS])
        raise InferenceError("api_part_unknown", number=number, kind=part.type, known=known)
    return kind


def _text(message: ChatMessage, number: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        kind = _part_kind(part, number)
        if kind is not None and message.role != "user":  # as in OpenAI's API: media come from the user only
            raise InferenceError("api_media_role", number=number, role=message.role, kind=part.type)
        texts.append(part.text if kind is None else PLACEHOLDERS[kind])
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


def request_media(messages: list[ChatMessage], modalities: frozenset[str]) -> dict[str, list[bytes | str]] | None:
    """The media of the conversation by kind, in placeholder order (None when there are none).

    `modalities` are the kinds the model reads: anything else is refused here, naming the message, before any
    file is decoded or fetched.
    """
    media: dict[str, list[bytes | str]] = {kind: [] for kind in KINDS}
    count = 0
    for number, message in enumerate(messages, start=1):
        for part in message.content if isinstance(message.content, list) else ():
            kind = _part_kind(part, number)
            if kind is None:
                continue
            if kind not in modalities:
                if not modalities:
                    raise InferenceError("api_content_unsupported", number=number, kind=part.type)
                reads = ", ".join(t for t, k in MEDIA_PARTS.items() if k in modalities)
                raise InferenceError("api_media_unsupported", number=number, kind=part.type, reads=reads)
            count += 1
            if count > MAX_MEDIA_ITEMS:
                raise InferenceError("api_media_too_many", limit=MAX_MEDIA_ITEMS)
            media[kind].append(_media_ref(part, number))
    return media if count else None


def _media_ref(part: ContentPart, number: int) -> bytes | str:
    """What a media part holds: decoded bytes (data URL, base64 audio) or an http(s) URL."""
    payload = (part.model_extra or {}).get(part.type)
    if part.type == "input_audio":
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, str) or not data:
            raise InferenceError("api_part_missing", number=number, kind=part.type, field="input_audio.data")
        audio_format = str(payload.get("format") or "").lower()
        if audio_format not in AUDIO_FORMATS:
            raise InferenceError("api_audio_format", number=number, format=audio_format or "-",
                                 formats=", ".join(AUDIO_FORMATS))
        return _decode(data, part.type, number)
    url = payload.get("url") if isinstance(payload, dict) else payload  # some clients send the URL alone
    if not isinstance(url, str) or not url:
        raise InferenceError("api_part_missing", number=number, kind=part.type, field=f"{part.type}.url")
    if url.startswith("data:"):
        head, comma, data = url.partition(",")
        if comma and head.endswith(";base64"):
            return _decode(data, part.type, number)
    elif url.startswith(("http://", "https://")):
        return url
    # Local paths are refused: whoever can reach the server must not read the server's files through it.
    raise InferenceError("api_media_bad_url", number=number, kind=part.type, url=url[:60])


def _decode(data: str, kind: str, number: int) -> bytes:
    """Base64 text to bytes, refused when it is not base64 or would decode to more than MAX_MEDIA_MB."""
    data = "".join(data.split())  # line breaks every 76 characters are common (MIME-style)
    size = len(data) * 3 // 4  # the decoded size, give or take the padding: checked before decoding
    if size > MAX_MEDIA_MB * 1024 * 1024:
        raise InferenceError("api_media_too_large", number=number, kind=kind, size=f"{size / 2**20:.1f}",
                             limit=MAX_MEDIA_MB)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InferenceError("api_media_bad_base64", number=number, kind=kind) from None
    if not raw:
        raise InferenceError("api_media_bad_base64", number=number, kind=kind)
    return raw


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
