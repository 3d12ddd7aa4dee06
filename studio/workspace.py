"""Where the studio keeps a visitor's things.

Normally that is the shared `STUDIO_HOME` (its `saves/` and `data/`). In demo mode every visitor gets a private
workspace, `STUDIO_HOME/workspaces/<id>/` with its own `saves/` (runs, saved settings, the chat server's state)
and `data/` (uploads, and a registry that also lists the shipped demo datasets, linked). A visitor is recognised by a
random cookie the studio sets on the first page load (`studio_visitor`); a browser that refuses the cookie still
gets a workspace of its own, for as long as the page stays open (Gradio's session). The folder name is a hash of
that token, so paths shown in the page never reveal it. Handlers learn the visitor from the request Gradio is
serving; nothing else in the studio needs to pass it around.

Since a client that drops cookies gets a new workspace on every page load, one network address may open only
`new_workspaces_per_hour` of them; each workspace records its client as a keyed hash (never the address itself), so
the runner can also bound jobs per client (`same_client_workspaces`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from engine import paths
from engine.atomic_write import write_json_atomic
from engine.errors import Setting, StudioError
from studio import demo_mode

VISITOR_COOKIE = "studio_visitor"
WORKSPACES = "workspaces"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
_SEEN_FILE = ".last_seen"
_CLIENT_FILE = ".client"  # {"client": keyed hash of the network address, "created": epoch seconds}
_CLIENT_KEY = ".client_key"  # the key of those hashes, in the workspaces folder: a bare hash of an IPv4 is reversible
_SEEN_EVERY = 30.0  # seconds between touches of a workspace's last-seen file
_seen: dict[str, float] = {}
_registry_lock = threading.Lock()


# A workspace's chat model state, relative to the workspace (the chat server keeps it under its saves folder).
CHAT_STATE = Path("saves") / ".studio" / "chat" / "server.json"


def demo_on() -> bool:
    """Whether the studio serves the public demo (the flag lives in `studio.demo_mode`)."""
    return demo_mode.active() is not None


def workspaces_root() -> Path:
    """The folder holding every visitor's workspace."""
    return paths.studio_home() / WORKSPACES


def new_token() -> str:
    return secrets.token_urlsafe(24)


def valid_token(token: str | None) -> bool:
    return bool(token) and bool(_TOKEN.match(token))


def _current_request() -> Any:
    try:
        from gradio.context import LocalContext
    except ImportError:  # pragma: no cover - gradio is a dependency of the studio
        return None
    return LocalContext.request.get(None)


def visitor_id(request: Any = None) -> str | None:
    """The current visitor's workspace name (a hash), or None outside a request."""
    request = request if request is not None else _current_request()
    if request is None:
        return None
    try:
        token = request.cookies.get(VISITOR_COOKIE)
    except AttributeError:
        token = None
    if valid_token(token):
        return "v" + hashlib.sha256(token.encode()).hexdigest()[:24]
    session = getattr(request, "session_hash", None)
    if session:
        return "s" + hashlib.sha256(str(session).encode()).hexdigest()[:24]
    return None


def client_address(request: Any) -> str:
    """The network address a request came from; behind a hosting platform's proxy, the first X-Forwarded-For hop.

    Without a platform the header is ignored: anyone can send it to a studio that is reached directly.
    """
    if demo_mode.detect_platform() is not None:
        headers = getattr(request, "headers", None) or {}
        forwarded = headers.get("x-forwarded-for") if hasattr(headers, "get") else None
        if forwarded and forwarded.split(",")[0].strip():
            return forwarded.split(",")[0].strip()
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def _client_key() -> bytes:
    path = workspaces_root() / _CLIENT_KEY
    key = path.read_bytes() if path.is_file() else b""
    if len(key) == 32:
        return key
    # Written whole under a temporary name and linked into place: two first visitors at once (threads, or two
    # studios on one STUDIO_HOME) agree on the key that was linked first and never read a half-written one.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{_CLIENT_KEY}.")  # 0600: the key is secret
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def client_id(request: Any) -> str:
    """A keyed hash of the request's network address (the address itself is never written down)."""
    return hmac.new(_client_key(), client_address(request).encode(), hashlib.sha256).hexdigest()[:32]


def _client_record(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / _CLIENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def same_client_workspaces(workspace: Path) -> list[Path]:
    """Every workspace opened from the same network address as `workspace` (itself included)."""
    client = _client_record(workspace).get("client")
    root = workspaces_root()
    if not client or not root.is_dir():
        return [workspace]
    return sorted(folder for folder in root.iterdir()
                  if folder.is_dir() and _client_record(folder).get("client") == client)


def _claim(folder: Path, request: Any, now: float) -> bool:
    """Create the workspace of a new visitor, unless their client opened too many in the last hour."""
    settings = demo_mode.active()
    client = client_id(request)
    with _registry_lock:
        if folder.is_dir():
            return True
        root = workspaces_root()
        recent = sum(1 for other in (root.iterdir() if root.is_dir() else []) if other.is_dir()
                     and _client_record(other).get("client") == client
                     and now - float(_client_record(other).get("created", 0)) < 3600)
        if settings is not None and recent >= settings.new_workspaces_per_hour:
            return False
        (folder / "saves").mkdir(parents=True, exist_ok=True)
        (folder / _CLIENT_FILE).write_text(json.dumps({"client": client, "created": now}), encoding="utf-8")
    return True


def home(request: Any = None) -> Path:
    """The folder relative paths start from: STUDIO_HOME, or in demo mode the visitor's workspace.

    Outside a request (while the page is being built) demo mode answers an empty placeholder that is never
    written: lists come out empty and every write path asks for a visitor (`require_visitor`).
    """
    if not demo_on():
        return paths.studio_home()
    visitor = visitor_id(request)
    if visitor is None:
        return workspaces_root() / "_nobody"
    folder = workspaces_root() / visitor
    _touch(folder, visitor, request if request is not None else _current_request())
    return folder


def saves_dir(request: Any = None) -> Path:
    """Run outputs and the studio's own state for the current visitor."""
    if not demo_on():
        return paths.saves_dir()
    return home(request) / "saves"


def require_visitor() -> Path:
    """The visitor's workspace for actions that write (start a run, upload, load a model)."""
    if not demo_on():
        return home()
    if visitor_id() is None:
        raise StudioError("demo_no_visitor")
    folder = home()
    if not folder.is_dir():  # its client opened too many workspaces lately: nothing was created
        settings = demo_mode.active()
        raise StudioError("demo_too_many_visitors", limit=settings.new_workspaces_per_hour if settings else 0)
    return folder


def _touch(folder: Path, visitor: str, request: Any) -> None:
    now = time.time()
    if now - _seen.get(visitor, 0.0) < _SEEN_EVERY:
        return
    if not folder.is_dir() and not _claim(folder, request, now):
        return
    _seen[visitor] = now
    (folder / "saves").mkdir(parents=True, exist_ok=True)
    (folder / _SEEN_FILE).write_text(str(int(now)), encoding="utf-8")


def last_seen(folder: Path) -> float:
    """When the workspace was last used (epoch seconds; its folder's mtime if it never recorded one)."""
    try:
        return float((folder / _SEEN_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        try:
            return folder.stat().st_mtime
        except OSError:
            return 0.0


def dataset_dir(value: str | None) -> str:
    """The dataset folder a form means: a folder typed in the form as typed, the default (`data`) the studio's own
    (`studio_data_dir`); in demo mode always the visitor's own (created on first use)."""
    if demo_on():
        folder = home() / "data"
        ensure_registry(folder, local_only=True)
        return str(folder)
    if value and str(value).strip() not in ("data", "./data"):
        return value
    return str(studio_data_dir())


def studio_data_dir() -> Path:
    """Where the studio keeps datasets and writes uploads, their registry and its backup: STUDIO_HOME/data (made
    on first use, listing the shipped datasets), or a user's own `data/` in the working directory.

    Never the shipped folder, which may be read-only, shared, or replaced by an upgrade; when STUDIO_HOME is the
    source tree (whose data/ is the shipped one) the studio's own folder is saves/.studio/data.
    """
    shipped = paths.resource_dir("data").resolve()
    own = paths.studio_home() / "data"
    for folder in (own, Path.cwd() / "data"):
        if (folder / "dataset_info.json").is_file() and folder.resolve() != shipped:
            return folder.resolve()
    if own.resolve() == shipped:
        own = paths.saves_dir() / ".studio" / "data"
    ensure_registry(own, local_only=False)
    return own


def ensure_registry(folder: Path, local_only: bool) -> Path:
    """A `dataset_info.json` of the studio's own (a demo visitor's, or STUDIO_HOME's) when `folder` has none yet:
    the shipped datasets, their files linked (not copied), so uploads join them in one registry the engine reads.

    `local_only` leaves out hub datasets (the demo cannot size-check them before a run).
    """
    registry_path = folder / "dataset_info.json"
    with _registry_lock:
        shipped_dir = paths.resource_dir("data").resolve()
        _link_media_folders(folder, shipped_dir)  # also into registries made before the media demos shipped
        if registry_path.is_file():
            return registry_path
        shipped = json.loads((shipped_dir / "dataset_info.json").read_text(encoding="utf-8"))
        own: dict[str, Any] = {}
        for name, entry in shipped.items():
            if "file_name" not in entry:
                if not local_only:
                    own[name] = entry
                continue
            link, target = folder / entry["file_name"], shipped_dir / entry["file_name"]
            if not target.exists() or ".." in Path(entry["file_name"]).parts:
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink() and not link.exists():
                link.symlink_to(target, target_is_directory=target.is_dir())
            own[name] = entry
        folder.mkdir(parents=True, exist_ok=True)
        # A unique temporary name: the thread lock does not reach a second studio on the same STUDIO_HOME.
        write_json_atomic(registry_path, own)
    return registry_path


def _link_media_folders(folder: Path, shipped_dir: Path) -> None:
    """Link the shipped folders of media files (`mllm_demo_data/`) into `folder`, so the image, video and audio
    paths of the shipped media datasets resolve there as they do in the shipped data folder."""
    if folder.resolve() == shipped_dir:
        return
    for target in sorted(shipped_dir.iterdir()):
        link = folder / target.name
        if target.is_dir() and not link.is_symlink() and not link.exists():
            folder.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target, target_is_directory=True)


def check_inside(path: str | Path, request: Any = None) -> Path:
    """A run folder named by the page, resolved; in demo mode refused unless it lies in the visitor's workspace."""
    resolved = Path(path).expanduser()
    resolved = (resolved if resolved.is_absolute() else home(request) / resolved).resolve()
    if demo_on():
        root = home(request).resolve()
        if ".." in Path(path).parts or not (resolved == root or resolved.is_relative_to(root)):
            raise StudioError("demo_path_outside", setting=Setting("output_dir"), path=str(path))
    return resolved


def remove_workspace(folder: Path) -> None:
    """Delete a workspace folder (its runs must already be stopped)."""
    shutil.rmtree(folder, ignore_errors=True)


class VisitorCookie:
    """ASGI middleware: give a browser that has no visitor cookie one, on the page itself (an HTML response).

    Only HTML responses carry it, so the assets a first page load fetches in parallel cannot hand out competing
    tokens. Over https (a hosting platform, usually inside an iframe) the cookie is `SameSite=None; Secure;
    Partitioned`; on plain http it is `SameSite=Lax`.
    """

    def __init__(self, app: Any, max_age: int = 14 * 24 * 3600) -> None:
        self.app = app
        self.max_age = max_age

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or self._has_cookie(scope):
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https" or self._header(scope, b"x-forwarded-proto") == "https"
        attributes = "SameSite=None; Secure; Partitioned" if secure else "SameSite=Lax"
        cookie = f"{VISITOR_COOKIE}={new_token()}; Path=/; Max-Age={self.max_age}; HttpOnly; {attributes}"

        async def send_with_cookie(message: dict) -> None:
            if message.get("type") == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    @staticmethod
    def _header(scope: dict, name: bytes) -> str:
        for key, value in scope.get("headers", []):
            if key.lower() == name:
                return value.decode("latin-1").split(",")[0].strip().lower()
        return ""

    def _has_cookie(self, scope: dict) -> bool:
        from http.cookies import CookieError, SimpleCookie

        raw = next((v for k, v in scope.get("headers", []) if k.lower() == b"cookie"), b"")
        if not raw:
            return False
        try:
            jar = SimpleCookie(raw.decode("latin-1"))
        except CookieError:
            return False
        morsel = jar.get(VISITOR_COOKIE)
        return morsel is not None and valid_token(morsel.value)
