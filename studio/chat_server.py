"""The Chat tab's model servers: `python -m engine api` as a subprocess on a free loopback port, found again from a
small state file after a page refresh or a studio restart, and talked to over HTTP with streaming.

Servers live in named slots: `main` for the single chat, `arena_a` and `arena_b` for the arena's two models. A
machine may not hold three models, so the single chat and the arena never run together: loading one unloads the
other (`start_servers`).

Files attached in the chat travel as OpenAI content parts holding data URLs: the server never reads a path the
page names, and the page reads nothing but what Gradio stored from an upload (`check_attachments`).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from engine.config import config_from_dict
from engine.data.media import EXTENSIONS
from engine.errors import StudioError
from engine.inference.protocol import MAX_MEDIA_MB
from engine.paths import studio_home
from engine.runfolder import tail_text, write_json_atomic
from engine.validation import validate_config
from studio import demo_mode, supervisor
from studio.workspace import CHAT_STATE, home, require_visitor, saves_dir, workspaces_root

READY_PREFIX = "API server ready on "  # the line `studio api` prints once it accepts connections
STOP_GRACE = 10.0  # seconds a server gets to shut down before it is killed
CHAT_FILE_TYPES = tuple(dict.fromkeys(suffix for suffixes in EXTENSIONS.values() for suffix in suffixes))
MAX_CHAT_FILES = 4  # attached to one message
MAX_CHAT_FILE_MB = min(20, MAX_MEDIA_MB)  # one attached file (the API server refuses more than MAX_MEDIA_MB)
MAIN = "main"
ARENA_SLOTS = ("arena_a", "arena_b")
SLOTS = (MAIN, *ARENA_SLOTS)


def chat_dir(slot: str = MAIN) -> Path:
    """Where a slot's server config, log and state live (the single chat's where they always were)."""
    if slot not in SLOTS:
        raise ValueError(f"unknown chat slot {slot!r}; known: {', '.join(SLOTS)}")
    folder = saves_dir() / ".studio" / "chat"
    return folder if slot == MAIN else folder / slot


def _state_path(slot: str = MAIN) -> Path:
    return chat_dir(slot) / "server.json"


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _is_live(state: dict[str, Any] | None) -> bool:
    return state is not None and supervisor.alive(state.get("pid"), state.get("pid_start_time"))


def find_server(slot: str = MAIN) -> dict[str, Any] | None:
    """A slot's running server state (url, key, pid, model), or None when there is none (or it is starting)."""
    state = _read_state(_state_path(slot))
    if not _is_live(state) or not isinstance(state.get("url"), str):
        return None
    return state


def base_config(model_path: str, method: str, template: str | None, quantization_bit: str | None, backend: str,
                dtype: str) -> dict[str, Any]:
    """A server config from the top bar's model, method, template and quantization and the chat's backend and dtype
    (no trained weights: those come from the chosen runs)."""
    return {"model_name_or_path": (model_path or "").strip(), "finetuning_type": method,
            "template": None if template in (None, "", "none") else template,
            "infer_backend": backend, "infer_dtype": dtype,
            "quantization_bit": None if quantization_bit in (None, "", "none") else int(quantization_bit)}


def start_server(config: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]:
    """Start the single chat's server on `config` (the arena's models are unloaded); see `start_servers`."""
    return start_servers({MAIN: config}, timeout=timeout)[MAIN]


def start_servers(configs: dict[str, dict[str, Any]], *, timeout: float = 600.0) -> dict[str, dict[str, Any]]:
    """Validate every slot's config, unload the slots not named, start (or keep) the named ones and wait until all
    answer; returns each slot's state.

    Two Loads at once (two clicks, two tabs, two studios) never leave two servers in a slot: the second one with the
    same settings waits for the first's server, one with other settings replaces it. Two slots given the same model
    are refused (`arena_same_model`): the arena compares two different models. In the demo the whole request needs
    room within `chats_total`, counted before anything starts.
    """
    settings = demo_mode.active()
    base = require_visitor() if settings is not None else home()
    wanted = {slot: _validated(config, base, settings) for slot, config in configs.items()}
    first, *others = wanted.values()
    if others and all(other == first for other in others):
        raise StudioError("arena_same_model", model=_identity(first))
    with supervisor.exclusive("chat"):
        states = {slot: _read_state(_state_path(slot)) for slot in wanted}
        kept = {slot for slot, state in states.items() if _is_live(state) and state.get("config") == wanted[slot]}
        for slot in SLOTS:
            if slot not in kept:
                stop_server(slot=slot)
        starting = [slot for slot in wanted if slot not in kept]
        if settings is not None and starting:
            if len(live_servers(workspaces_root())) + len(starting) > settings.chats_total:
                key = "demo_chat_busy" if len(wanted) == 1 else "arena_demo_busy"
                raise StudioError(key, limit=settings.chats_total, needed=len(starting))
        for slot in starting:
            states[slot] = _spawn(wanted[slot], base, settings, slot)
    return {slot: _wait_ready(state, timeout, slot) for slot, state in states.items()}


def _validated(config: dict[str, Any], base: Path, settings: Any) -> dict[str, Any]:
    """The config a server runs: the demo's limits applied, validated as the `chat` command, secrets left out."""
    if settings is not None:
        config = demo_mode.apply_limits(config, "chat", base, settings)
    cfg = config_from_dict({**config, "api_host": "127.0.0.1", "api_port": 0, "api_model_name": "studio"},
                           source="the chat settings")
    validate_config(cfg, "chat")
    return cfg.to_dict(include_secrets=False)


def _identity(config: dict[str, Any]) -> str:
    """The model a server config loads, as people name it: the model, plus the adapter when there is one."""
    adapter = config.get("adapter_name_or_path")
    return f"{config.get('model_name_or_path')} + {adapter}" if adapter else str(config.get("model_name_or_path"))


def _spawn(wanted: dict[str, Any], base: Path, settings: Any, slot: str) -> dict[str, Any]:
    """Start `python -m engine api` on `wanted` from `base` and record it before anyone else can look."""
    folder = chat_dir(slot)
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(wanted, sort_keys=False), encoding="utf-8")
    out_path, log_path = folder / "ready.txt", folder / "server_log.txt"
    out_path.write_bytes(b"")
    log_path.write_bytes(b"")
    env = {"API_KEY": key, "STUDIO_HOME": str(studio_home()),
           **(demo_mode.job_env(base) if settings is not None else {})}
    child = supervisor.spawn(supervisor.engine_command("api", str(config_path)), cwd=base, log=out_path, env=env,
                             stderr=log_path)
    state = {**child, "key": key, "url": None, "config": wanted, "model": wanted.get("model_name_or_path"),
             "adapter": wanted.get("adapter_name_or_path"), "identity": _identity(wanted)}
    write_json_atomic(_state_path(slot), state)
    return state


def _wait_ready(state: dict[str, Any], timeout: float, slot: str = MAIN) -> dict[str, Any]:
    """Wait until the server in `state` prints its ready line; record its address and return the state."""
    folder = chat_dir(slot)
    out_path, log_path = folder / "ready.txt", folder / "server_log.txt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if isinstance(state.get("url"), str):
            return state
        line = next((ln for ln in _read_text(out_path).splitlines() if ln.startswith(READY_PREFIX)), None)
        if line:
            with supervisor.exclusive("chat"):
                current = _read_state(_state_path(slot))
                if current is None or current.get("pid") != state["pid"]:
                    raise StudioError("chat_server_failed", log="(replaced by another Load)")
                state = {**current, "url": line[len(READY_PREFIX):].strip()}
                write_json_atomic(_state_path(slot), state)
            return state
        if not _is_live(state):
            raise StudioError("chat_server_failed", log=tail_text(log_path, max_lines=6) or "(empty)")
        time.sleep(0.2)
    stop_server(slot=slot)
    raise StudioError("chat_server_timeout", seconds=int(timeout))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def state_files(workspace: Path) -> list[Path]:
    """Every slot's state file of one workspace (relative to it: `CHAT_STATE` is the single chat's)."""
    return [Path(workspace) / CHAT_STATE] + [Path(workspace) / CHAT_STATE.parent / slot / CHAT_STATE.name
                                             for slot in ARENA_SLOTS]


def live_servers(root: Path) -> list[Path]:
    """The state files of chat servers (every slot) still running anywhere under `root` (every workspace of a
    demo)."""
    return [path for folder in sorted(Path(root).glob("*")) for path in state_files(folder)
            if _is_live(_read_state(path))]


def stop_server(state_path: Path | None = None, slot: str = MAIN) -> bool:
    """Stop a chat server if one runs (SIGTERM, then SIGKILL); True when one was stopped.

    `state_path` names another workspace's server (the demo's clean-up); by default the current one's in `slot`.
    """
    state_path = state_path or _state_path(slot)
    state = _read_state(state_path)
    stopped = _is_live(state)
    if stopped:
        supervisor.stop([(state["pid"], state.get("pid_start_time"))], grace=STOP_GRACE)
    state_path.unlink(missing_ok=True)
    return stopped


def stop_servers() -> int:
    """Stop every slot's server of the current workspace (the single chat's and the arena's); how many ran."""
    return sum(stop_server(slot=slot) for slot in SLOTS)


def media_kind(path: str | Path) -> str | None:
    """"images", "videos" or "audios" by the file's extension; None for any other file."""
    suffix = Path(path).suffix.lower()
    return next((kind for kind, suffixes in EXTENSIONS.items() if suffix in suffixes), None)


def attachment_limit_mb() -> float:
    """The largest file the chat sends: MAX_CHAT_FILE_MB, or the demo's upload limit when that is smaller."""
    settings = demo_mode.active()
    return MAX_CHAT_FILE_MB if settings is None else min(MAX_CHAT_FILE_MB, settings.max_upload_mb)


def check_attachments(paths: list[str], upload_folder: str | Path) -> list[str]:
    """The attached files, each checked: stored by Gradio from an upload, a media type, within the size limit.

    A path from anywhere else is refused (a crafted request could name any file the studio can read).
    """
    if len(paths) > MAX_CHAT_FILES:
        raise StudioError("chat_too_many_files", count=len(paths), limit=MAX_CHAT_FILES)
    folder = Path(os.path.realpath(upload_folder))
    limit = attachment_limit_mb()
    checked = []
    for path in paths:
        real = Path(os.path.realpath(path))
        name = Path(path).name
        if folder not in real.parents:
            raise StudioError("chat_file_outside", name=name)
        if media_kind(real) is None:
            raise StudioError("chat_file_type", name=name, types=" ".join(CHAT_FILE_TYPES))
        size = real.stat().st_size if real.is_file() else 0
        if size > limit * 1024 * 1024:
            raise StudioError("chat_file_too_big", name=name, size=f"{size / 2**20:.1f}", limit=f"{limit:g}")
        checked.append(str(real))
    return checked


def content_parts(text: str, files: list[str]) -> list[dict[str, Any]]:
    """A user message's OpenAI content parts: each file (in attachment order) as a data URL, then the text."""
    parts: list[dict[str, Any]] = []
    for path in files:
        try:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        except OSError:  # Gradio cleans its upload folder: a file of an old turn may be gone
            raise StudioError("chat_file_missing", name=Path(path).name) from None
        kind = media_kind(path)
        if kind == "audios":
            audio_format = Path(path).suffix[1:].lower()
            parts.append({"type": "input_audio", "input_audio": {"data": data, "format": audio_format}})
            continue
        mime = mimetypes.guess_type(path)[0] or ("image/png" if kind == "images" else "video/mp4")
        part = "image_url" if kind == "images" else "video_url"
        parts.append({"type": part, part: {"url": f"data:{mime};base64,{data}"}})
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _openai_message(message: dict[str, Any]) -> dict[str, Any]:
    """A chat history entry as OpenAI expects it (attached files become content parts)."""
    if not message.get("files"):
        return {"role": message["role"], "content": message["content"]}
    return {"role": message["role"], "content": content_parts(message["content"], message["files"])}


def _request_error(response: Any) -> StudioError:
    """The API server's refusal as a StudioError; a model that reads text only gets the Chat tab's own advice."""
    try:
        error = response.json()["error"]
        detail, code = error["message"], error.get("code")
    except (ValueError, KeyError, TypeError):
        detail, code = response.text[:300], None
    if code == "api_content_unsupported":
        return StudioError("chat_model_text_only")
    return StudioError("chat_request_failed", detail=detail)


def stream_reply(state: dict[str, Any], messages: list[dict[str, Any]], *, tools: list | None = None,
                 **sampling: Any) -> Iterator[str]:
    """POST the conversation (OpenAI format; entries may carry `files`) with stream=True and yield the reply as
    it grows."""
    import httpx

    settings = demo_mode.active()
    if settings is not None:  # the model server answers whatever it is asked: the demo's cap is applied here
        demo_mode.check_chat_tokens(sampling.get("max_tokens"), settings)
    messages = [_openai_message(message) for message in messages]
    body: dict[str, Any] = {"model": "studio", "messages": messages, "stream": True,
                            **{k: v for k, v in sampling.items() if v is not None}}
    if tools:
        body["tools"] = tools
    headers = {"Authorization": f"Bearer {state['key']}"}
    text = ""
    with httpx.stream("POST", f"{state['url']}/v1/chat/completions", json=body, headers=headers,
                      timeout=httpx.Timeout(600.0, connect=10.0)) as response:
        if response.status_code != 200:
            response.read()
            raise _request_error(response)
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    text += delta["content"]
                    yield text
                for call in delta.get("tool_calls") or []:
                    function = call.get("function") or {}
                    text += f"\n🔧 {function.get('name', '')}({function.get('arguments', '')})"
                    yield text


def stream_replies(states: dict[str, dict[str, Any]], conversations: dict[str, list[dict[str, Any]]],
                   **sampling: Any) -> Iterator[tuple[str, str | StudioError]]:
    """Ask several servers at once (the arena's two), each its own conversation; yield (key, reply so far) as any
    of them grows, or (key, StudioError) when one fails: the others go on."""
    import httpx

    updates: queue.Queue = queue.Queue()

    def ask(key: str) -> None:
        try:
            for text in stream_reply(states[key], conversations[key], **sampling):
                updates.put((key, text))
        except StudioError as err:
            updates.put((key, err))
        except httpx.HTTPError as err:  # the server went away mid-answer (unloaded, killed)
            updates.put((key, StudioError("chat_request_failed", detail=str(err) or type(err).__name__)))
        finally:
            updates.put((key, None))

    for key in states:
        threading.Thread(target=ask, args=(key,), name=f"chat-{key}", daemon=True).start()
    running = len(states)
    while running:
        key, item = updates.get()
        if item is None:
            running -= 1
        else:
            yield key, item
