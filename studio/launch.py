"""`studio launch`: serve the studio on 127.0.0.1 (port 7860 or the next free one), with optional throttled login."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import socket
import sys
from pathlib import Path

from starlette.middleware import Middleware

from studio.i18n import available_languages
from studio.login import ClientAddress, make_auth

# Gradio's cache clean-up: every 10 minutes, delete uploads and served files older than an hour (and all of them
# when the studio stops). An upload is copied into the dataset folder when registered, so nothing needed is lost.
CACHE_CLEANUP = (600, 3600)


def find_free_port(host: str, start: int = 7860, tries: int = 100) -> int:
    """The first port from `start` on which nothing listens."""
    for port in range(start, start + tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise SystemExit(f"error: no free port between {start} and {start + tries - 1}; pass --port.")


def read_auth(auth: str | None, auth_file: str | None) -> list[tuple[str, str]] | None:
    """`user:password` pairs from --auth or from the lines of --auth-file."""
    lines: list[str] = []
    if auth:
        lines.append(auth)
    if auth_file:
        path = Path(auth_file)
        if not path.is_file():
            raise SystemExit(f"error: auth file '{auth_file}' does not exist.")
        lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip() and not line.strip().startswith("#")]
    pairs = []
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise SystemExit("error: each login must be written as user:password (both parts non-empty).")
        pairs.append((user, password))
    return pairs or None


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The launch options (environment variables fill what is not given)."""
    parser = argparse.ArgumentParser(prog="studio launch", description="Open the fine-tuning studio in a browser.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ["GRADIO_SERVER_PORT"])
                        if os.environ.get("GRADIO_SERVER_PORT") else None)
    parser.add_argument("--share", action="store_true",
                        default=os.environ.get("GRADIO_SHARE", "").lower() in ("1", "true", "yes"))
    parser.add_argument("--auth", help="user:password")
    parser.add_argument("--auth-file", help="a file of user:password lines")
    parser.add_argument("--root-path", default=os.environ.get("GRADIO_ROOT_PATH") or None)
    parser.add_argument("--lang", choices=list(available_languages()), default=None,
                        help="first language (default: the browser's, else English)")
    parser.add_argument("--demo", action="store_true",
                        help="public demo mode: a private workspace per visitor and limits (STUDIO_DEMO_* variables); "
                             "on by itself on Hugging Face Spaces and ModelScope Studios")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build the app and serve it until interrupted."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    auth = read_auth(args.auth, args.auth_file)
    if args.share and not auth:
        print("warning: --share makes the studio reachable from the internet without a login. "
              "Add --auth user:password.", file=sys.stderr)
    port = args.port or find_free_port(args.host)
    from studio import demo_mode

    settings = demo_mode.DemoSettings.from_env() if demo_mode.demo_requested(args.demo) else None
    demo_mode.activate(settings)
    from studio.app import CSS, create_app
    from studio.chat_server import stop_servers
    from studio.janitor import start_cleaner, stop_all_chat_servers

    # The chat model servers are the studio's children in spirit: they go when the studio goes.
    atexit.register(stop_all_chat_servers if settings else stop_servers)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))

    # Each Blocks sets up its queue from this (Gradio's documented variable); calling demo.queue() once the app
    # is built would rebuild Gradio's whole server app a second time, a quarter of a second of every start.
    os.environ.setdefault("GRADIO_DEFAULT_CONCURRENCY_LIMIT", "4")
    demo = create_app(args.lang or "en")
    # Uploads and the files handed to the browser (downloads) live in Gradio's cache: delete them once old.
    demo.delete_cache = CACHE_CLEANUP
    middleware: list = []
    extra: dict = {}
    if auth:
        middleware.append(Middleware(ClientAddress))
    if settings is not None:
        from studio.workspace import VisitorCookie

        print(f"Demo mode ({demo_mode.detect_platform() or 'on request'}): {settings}", flush=True)
        start_cleaner(settings)
        middleware.append(Middleware(VisitorCookie))
        extra["max_file_size"] = f"{settings.max_upload_mb:g}mb"
    if middleware:
        extra["app_kwargs"] = {"middleware": middleware}
    demo.launch(
        server_name=args.host, server_port=port, share=args.share, auth=make_auth(auth) if auth else None,
        root_path=args.root_path, css=CSS, show_error=False, footer_links=[], quiet=False, **extra)
    return 0
