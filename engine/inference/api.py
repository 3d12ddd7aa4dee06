"""The OpenAI-compatible API server: `GET /v1/models` and `POST /v1/chat/completions`, streamed or not.

`create_app(backend, api_key)` builds the FastAPI app; `serve(...)` runs it with uvicorn on a socket it binds
itself (so a busy port is a clear error and port 0 picks a free one) and prints exactly one line to stdout when
the server accepts connections: `API server ready on http://HOST:PORT`. Everything else goes to stderr.

Errors have OpenAI's shape `{"error": {"message", "type", "param", "code"}}`: 400 for a request that cannot be
served, 401 for a missing or wrong key, 404 for an unknown model or path, 422 for a body that does not match
the schema, 500 for a failure of the server itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any

from engine.errors import StudioError, format_message
from engine.inference import READY_PREFIX
from engine.inference.backend import ChatBackend, Completion, InferenceError
from engine.inference.protocol import (
    ChatCompletionRequest,
    request_media,
    request_sampling,
    request_thinking,
    request_tools,
    to_conversation,
    tool_calls_message,
)

logger = logging.getLogger(__name__)

READY_LINE = READY_PREFIX + "http://{host}:{port}"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _lang() -> str:
    return os.environ.get("STUDIO_LANG", "en")


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None) -> Any:
    """A JSON response carrying OpenAI's error object."""
    from fastapi.responses import JSONResponse

    return JSONResponse(error_body(message, kind, param, code), status_code=status)


class KeyCheck:
    """ASGI middleware: every `/v1/` request must carry `Authorization: Bearer <key>` (checked before the body)."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app, self.expected = app, f"Bearer {api_key}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                message = format_message("error.api_bad_key", _lang())
                await error_response(401, message, code="invalid_api_key")(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _validation_error(exc: Any) -> Any:
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, format_message("error.api_invalid_json", _lang()), code="invalid_json")
    first = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    param = ".".join(location) or None
    message = format_message("error.api_invalid_body", _lang(), param=param or "body",
                             problem=first.get("msg", "invalid value"))
    return error_response(422, message, param=param, code="invalid_body")


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _message(backend: ChatBackend, text: str, tools: Any, finish: str) -> tuple[dict[str, Any], str]:
    """The assistant message of a choice (tool calls parsed when tools were given) and its finish reason."""
    calls = backend.extract_tool_calls(text) if tools else None
    if calls:
        return {"role": "assistant", "content": None, "tool_calls": tool_calls_message(calls)}, "tool_calls"
    return {"role": "assistant", "content": text}, finish


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def _stream_events(backend: ChatBackend, request: ChatCompletionRequest, streams: list[Iterator[Any]],
                   tools: Any) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format, one choice after the other, ending with `data: [DONE]`."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": backend.model_id}
    with_usage = bool(request.stream_options and request.stream_options.include_usage)
    extra = {"usage": None} if with_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**head, "choices": [choice], **extra})

    prompt_tokens = completion_tokens = 0
    try:
        for index, stream in enumerate(streams):
            yield chunk(index, {"role": "assistant", "content": ""})
            final: Completion | None = None
            for item in stream:
                if isinstance(item, Completion):
                    final = item
                elif not tools:  # with tools the reply may be a call: it is parsed once complete
                    yield chunk(index, {"content": item})
            assert final is not None
            prompt_tokens, completion_tokens = final.prompt_tokens, completion_tokens + final.completion_tokens
            message, finish = _message(backend, final.text, tools, final.finish_reason)
            if tools and message.get("tool_calls"):
                calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
                yield chunk(index, {"tool_calls": calls})
            elif tools and final.text:
                yield chunk(index, {"content": final.text})
            yield chunk(index, {}, finish)
        if with_usage:
            yield _sse({**head, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)})
    except StudioError as err:
        yield _sse(error_body(err.message(_lang()), code=err.key))
    except Exception as exc:  # noqa: BLE001 - the stream has started: the error travels inside it
        logger.exception("Generation failed")
        yield _sse(error_body(f"{type(exc).__name__}: {exc}", kind="server_error"))
    finally:
        for stream in streams:  # stops a generation still running when the client went away
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    yield _sse("[DONE]")


async def _in_threads(events: Iterator[str]) -> AsyncIterator[str]:
    """A blocking event generator drained by a thread of its own, closed (its generation stopped) however the
    stream ends.

    The thread hands each event to the event loop as soon as it is made, and events that queued up meanwhile are
    sent in one write. A worker-thread round trip per event (the loop asking for the next one, a worker waiting
    for it, the loop woken with it) cost every token two more thread switches, each taking the GIL from the
    generating thread.
    """
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()
    end = object()

    def hand_over(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is gone
            stop.set()

    def pump() -> None:
        try:
            for event in events:
                hand_over(event)
                if stop.is_set():  # the client went away: close below, which stops the generation
                    break
        except BaseException as exc:  # noqa: BLE001 - raised again in the reader
            hand_over(exc)
        finally:
            events.close()
            hand_over(end)

    thread = threading.Thread(target=pump, name="sse-events", daemon=True)
    thread.start()
    try:
        while True:
            batch = [await queue.get()]
            while not queue.empty():  # events that queued up while the last ones were sent go out together
                batch.append(queue.get_nowait())
            texts = [item for item in batch if isinstance(item, str)]
            if texts:
                yield "".join(texts)
            failure = next((item for item in batch if isinstance(item, BaseException)), None)
            if failure is not None:
                raise failure
            if batch[-1] is end:  # the pump's last word
                return
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(thread.join)


def _streaming_response(events: Iterator[str]) -> Any:
    """A server-sent-events response that closes its generator when the client goes away.

    Starlette leaves a body iterator to the garbage collector when sending fails; ours would keep generating.
    """
    import anyio
    from starlette.responses import StreamingResponse

    class ClosingStreamingResponse(StreamingResponse):
        async def stream_response(self, send: Any) -> None:
            try:
                await super().stream_response(send)
            finally:
                with anyio.CancelScope(shield=True):
                    await self.body_iterator.aclose()  # type: ignore[union-attr]

    return ClosingStreamingResponse(_in_threads(events), media_type="text/event-stream",
                                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def create_app(backend: ChatBackend, api_key: str | None = None) -> Any:
    """The FastAPI app serving `backend` (every `/v1/` route asks for `api_key` when one is set)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    created = int(time.time())
    app = FastAPI(title="LLM Studio API", docs_url=None, redoc_url=None)
    if api_key:
        app.add_middleware(KeyCheck, api_key=api_key)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> Any:
        return _validation_error(exc)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> Any:
        code = "not_found" if exc.status_code == 404 else None
        return error_response(exc.status_code, str(exc.detail), code=code)

    @app.exception_handler(StudioError)
    async def on_studio_error(request: Request, exc: StudioError) -> Any:
        return error_response(400, exc.message(_lang()), code=exc.key)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Any:
        logger.exception("Request failed")
        return error_response(500, f"{type(exc).__name__}: {exc}", kind="server_error")

    model_card = {"id": backend.model_id, "object": "model", "created": created, "owned_by": "studio"}

    def unknown_model(name: str) -> Any:
        message = format_message("error.api_unknown_model", _lang(), name=name, known=backend.model_id)
        return error_response(404, message, param="model", code="model_not_found")

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness, without a key: the studio polls it."""
        return {"status": "ok", "model": backend.model_id}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        """The one model this server serves."""
        return {"object": "list", "data": [model_card]}

    @app.get("/v1/models/{name:path}")
    def get_model(name: str) -> Any:
        """One model's card, or 404."""
        return model_card if name == backend.model_id else unknown_model(name)

    @app.post("/v1/chat/completions")
    def chat_completions(request: ChatCompletionRequest) -> Any:
        """A reply (or `n`) to the conversation; `stream: true` sends server-sent events."""
        if request.model != backend.model_id:
            return unknown_model(request.model)
        messages, system = to_conversation(request.messages)
        # What the template reads when the backend itself reads nothing (vLLM for now): it says why, not "text only".
        media = request_media(request.messages, backend.modalities or backend.template.modalities)
        tools = request_tools(request)
        sampling = request_sampling(request)
        thinking = request_thinking(request)
        extra = {"media": media} if media else {}  # a text request reaches the backend exactly as before
        if request.stream:
            streams = []
            for index in range(request.n):  # choices are streamed one after the other
                seed = None if sampling["seed"] is None else sampling["seed"] + index
                streams.append(backend.stream(messages, system, tools, enable_thinking=thinking, **extra,
                                              **{**sampling, "n": 1, "seed": seed}))
            return _streaming_response(_stream_events(backend, request, streams, tools))
        completions = backend.generate_choices(messages, system, tools, enable_thinking=thinking, **extra,
                                               **sampling)
        choices = []
        for index, completion in enumerate(completions):
            message, finish = _message(backend, completion.text, tools, completion.finish_reason)
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": backend.model_id,
            "choices": choices,
            "usage": _usage(completions[0].prompt_tokens, sum(c.completion_tokens for c in completions)),
        }

    return app


# ---------------------------------------------------------------- serving


def server_address(api_host: str | None, api_port: int | None, api_key: str | None) -> tuple[str, int, str | None]:
    """(host, port, key): the config's values, else API_HOST / API_PORT / API_KEY, else 127.0.0.1:8000, no key."""
    host = api_host or os.environ.get("API_HOST") or DEFAULT_HOST
    port = api_port
    if port is None:
        raw = os.environ.get("API_PORT", "").strip()
        if raw:
            if not raw.isdigit() or int(raw) > 65535:
                raise InferenceError("api_port_invalid", value=raw)
            port = int(raw)
        else:
            port = DEFAULT_PORT
    key = api_key or os.environ.get("API_KEY") or None
    return host, port, key


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: a free one), or an InferenceError that says why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InferenceError("api_bind_failed", host=host, port=port, error=exc.strerror) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise InferenceError("api_port_in_use", host=host, port=port) from None
        raise InferenceError("api_bind_failed", host=host, port=port, error=exc.strerror or str(exc)) from None
    sock.set_inheritable(True)
    return sock


def ready_line(host: str, port: int) -> str:
    """The line printed once the server accepts connections (IPv6 hosts in brackets)."""
    return READY_LINE.format(host=f"[{host}]" if ":" in host else host, port=port)


def make_server(backend: ChatBackend, sock: socket.socket, api_key: str | None = None,
                ready_stream: IO[str] | None = None) -> Any:
    """A uvicorn server for `backend` on the bound `sock`; it writes the ready line once it accepts connections.

    Run it with `server.run(sockets=[sock])`; setting `server.should_exit = True` stops it (from any thread).
    """
    import uvicorn

    host, port = sock.getsockname()[:2]
    stream = ready_stream or sys.stdout

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                logger.info("Serving %s on %s:%d%s.", backend.model_id, host, port,
                            " (API key required)" if api_key else "")
                stream.write(ready_line(host, port) + "\n")
                stream.flush()

        def handle_exit(self, sig: int, frame: Any) -> None:
            # SIGTERM/SIGINT are the normal way to stop the server: shut down and exit 0, without uvicorn's
            # re-raising of the signal afterwards (which would end the process as killed).
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(create_app(backend, api_key), log_config=None, lifespan="off",
                            timeout_graceful_shutdown=3, server_header=False)
    return Server(config)


def serve(backend: ChatBackend, host: str, port: int, api_key: str | None = None,
          ready_stream: IO[str] | None = None) -> None:
    """Run the server until SIGINT/SIGTERM; prints the ready line to `ready_stream` (stdout) when listening."""
    sock = bind_socket(host, port)
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("The API server listens on %s without a key: anyone who can reach it can use it. "
                       "Set api_key (or API_KEY).", host)
    try:
        make_server(backend, sock, api_key, ready_stream).run(sockets=[sock])
    finally:
        sock.close()
