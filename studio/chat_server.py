"""The Chat tab's model server: `python -m engine api` as a subprocess on a free loopback port, found again from a
small state file after a page refresh or a studio restart, and talked to over HTTP with streaming."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from engine.config import config_from_dict, validate_config
from engine.errors import StudioError
from engine.paths import studio_home
from engine.runfolder import is_process_alive, process_start_time, tail_text, write_json_atomic
from studio import demo_mode
from studio.workspace import require_visitor, saves_dir, workspaces_root

READY_PREFIX = "API server ready on "  # the line `studio api` prints once it accepts connections


def chat_dir() -> Path:
    """Where the chat server's config, log and state live."""
    return saves_dir() / ".studio" / "chat"


def _state_path() -> Path:
    return chat_dir() / "server.json"


def find_server() -> dict[str, Any] | None:
    """The running chat server's state (url, key, pid, model), or None when there is none."""
    try:
        state = json.loads(_state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not is_process_alive(state.get("pid"), state.get("pid_start_time")) or not state.get("url"):
        return None
    return state


def start_server(config: dict[str, Any], *, timeout: float = 600.0) -> dict[str, Any]:
    """Validate `config`, stop any earlier server, start a new one and wait until it answers."""
    settings = demo_mode.active()
    if settings is not None:
        config = demo_mode.apply_limits(config, "chat", require_visitor(), settings)
    cfg = config_from_dict({**config, "api_host": "127.0.0.1", "api_port": 0, "api_model_name": "studio"},
                           source="the chat settings")
    validate_config(cfg, "chat")
    stop_server()
    if settings is not None and len(live_servers(workspaces_root())) >= settings.chats_total:
        raise StudioError("demo_chat_busy", limit=settings.chats_total)
    folder = chat_dir()
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg.to_dict(include_secrets=False), sort_keys=False), encoding="utf-8")
    out_path, log_path = folder / "ready.txt", folder / "server_log.txt"
    env = {**os.environ, "API_KEY": key, "STUDIO_HOME": str(studio_home()), "PYTHONUNBUFFERED": "1"}
    with open(out_path, "w") as out, open(log_path, "w") as log:
        child = subprocess.Popen([sys.executable, "-m", "engine", "api", str(config_path)], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=log, env=env, start_new_session=True)
    # Reap the server when it ends so no zombie is left in the studio's process table.
    threading.Thread(target=child.wait, name=f"reap-chat-{child.pid}", daemon=True).start()
    state = {"pid": child.pid, "pid_start_time": process_start_time(child.pid), "key": key, "url": None,
             "model": cfg.model.model_name_or_path, "adapter": cfg.model.adapter_name_or_path}
    write_json_atomic(_state_path(), state)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = next((ln for ln in out_path.read_text().splitlines() if ln.startswith(READY_PREFIX)), None)
        if line:
            state["url"] = line[len(READY_PREFIX):].strip()
            write_json_atomic(_state_path(), state)
            return state
        if child.poll() is not None:
            raise StudioError("chat_server_failed", log=tail_text(log_path, max_lines=6) or "(empty)")
        time.sleep(0.2)
    stop_server()
    raise StudioError("chat_server_timeout", seconds=int(timeout))


def live_servers(root: Path) -> list[Path]:
    """The state files of chat servers still running anywhere under `root` (every workspace of a demo)."""
    found = []
    for path in Path(root).glob("*/saves/.studio/chat/server.json"):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if is_process_alive(state.get("pid"), state.get("pid_start_time")):
            found.append(path)
    return found


def stop_server(state_path: Path | None = None) -> bool:
    """Stop the chat server if one runs (SIGTERM, then SIGKILL); True when one was stopped.

    `state_path` names another workspace's server (the demo's clean-up); by default the current one's.
    """
    state_path = state_path or _state_path()
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pid = state.get("pid")
    stopped = False
    if is_process_alive(pid, state.get("pid_start_time")):
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(os.getpgid(pid), sig)
            except (ProcessLookupError, PermissionError):
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and is_process_alive(pid, state.get("pid_start_time")):
                time.sleep(0.1)
            if not is_process_alive(pid, state.get("pid_start_time")):
                break
        stopped = True
    state_path.unlink(missing_ok=True)
    return stopped


def stream_reply(state: dict[str, Any], messages: list[dict[str, Any]], *, tools: list | None = None,
                 **sampling: Any) -> Iterator[str]:
    """POST the conversation (OpenAI format) with stream=True and yield the reply as it grows."""
    import httpx

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
            try:
                detail = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                detail = response.text[:300]
            raise StudioError("chat_request_failed", detail=detail)
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
