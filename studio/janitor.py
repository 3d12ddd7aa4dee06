"""The public demo's clean-up: jobs past their time aborted, idle chat models unloaded, idle workspaces deleted,
everything stopped on exit.

Kept apart from `studio.demo_mode` (which only states and checks the limits) so that the limits sit below the
runner and the chat server, and the clean-up above them: no import circle.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path

from engine.runfolder import read_status
from studio.chat_server import live_servers, state_files, stop_server
from studio.demo_mode import DemoSettings
from studio.queue import dispatch, drop_workspace
from studio.runner import abort_run, find_live_runs
from studio.workspace import last_seen, remove_workspace, workspaces_root

logger = logging.getLogger(__name__)


def stop_all_chat_servers() -> int:
    """Stop every workspace's chat model (the studio is exiting); returns how many were running."""
    servers = live_servers(workspaces_root())
    for path in servers:
        stop_server(path)
    return len(servers)


def clean_idle_workspaces(settings: DemoSettings, now: float | None = None) -> list[str]:
    """Unload chat models idle past `chat_idle_minutes`; delete workspaces idle past `idle_minutes`.

    A workspace with a live run has the run aborted and is deleted on a later pass, once the run has stopped.
    Returns the names of the deleted workspaces.
    """
    now = time.time() if now is None else now
    root = workspaces_root()
    removed = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        idle = now - last_seen(folder)
        if idle > settings.chat_idle_minutes * 60:
            for chat_state in state_files(folder):  # the single chat's server and the arena's two
                if chat_state.exists():
                    stop_server(chat_state)
        if idle > settings.idle_minutes * 60:
            live = find_live_runs(folder / "saves")
            for run_dir in live:
                abort_run(run_dir, grace=10.0)
            if live:
                continue  # removed on a later pass, once its runs have stopped
            drop_workspace(folder)
            remove_workspace(folder)
            removed.append(folder.name)
    return removed


def _started(run_dir: Path) -> float | None:
    try:
        return datetime.fromisoformat(str(read_status(run_dir).get("started_at"))).timestamp()
    except ValueError:
        return None


def abort_overdue_jobs(settings: DemoSettings, now: float | None = None) -> list[Path]:
    """Abort every visitor's job that has run longer than `max_job_minutes`; returns their run folders.

    The budgets bound the work a job asks for; this bounds what it really takes (a slow machine, a stuck step).
    """
    now = time.time() if now is None else now
    reason = f"Stopped by the demo: a job may run for at most {settings.max_job_minutes:g} minutes."
    overdue = []
    for run_dir in find_live_runs(workspaces_root()):
        started = _started(run_dir)
        if started is None or now - started <= settings.max_job_minutes * 60:
            continue
        if abort_run(run_dir, grace=30.0, reason=reason):
            logger.info("aborted %s: it ran longer than %g minutes", run_dir, settings.max_job_minutes)
            overdue.append(run_dir)
    return overdue


def start_cleaner(settings: DemoSettings, every: float = 60.0) -> threading.Event:
    """A daemon thread that runs `abort_overdue_jobs` and `clean_idle_workspaces` every `every` seconds; set the
    returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                abort_overdue_jobs(settings)
                clean_idle_workspaces(settings)
                dispatch()  # jobs that ended while no page was open free their places
            except Exception:  # the demo must keep serving even if one clean-up pass fails
                logger.exception("cleaning idle demo workspaces failed")

    threading.Thread(target=loop, name="demo-cleaner", daemon=True).start()
    return stop
