"""One supervisor for every process the studio starts (engine jobs, chat model servers): start, find, stop, reap.

- Start: an argument list (never a shell) in a new session, stdin closed, output into a file, the working
  directory set to the folder relative paths are meant from (STUDIO_HOME, or a demo visitor's workspace), so a
  relative path means the same thing to the studio and to the engine. A thread reaps the child when it ends.
- Find again: callers record `pid` and `pid_start_time` in their state file (a run's status.json, the chat server's
  server.json); `alive` checks both, because pids are reused.
- Stop: SIGTERM first (the engine saves a checkpoint on it), SIGKILL to the whole process tree after a grace period.
- Never two of the same thing: `exclusive(name)` is a lock that holds across threads of this studio and across
  studios sharing one STUDIO_HOME. Hold it only around the cheap part (count what runs, start, record the pid).

Torch-free.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import StudioError, error_from_json
from engine.paths import saves_dir
from engine.preflight import MEMORY_ENV
from engine.runfolder import file_lock, is_process_alive, process_descendants, process_start_time

LOCKS = Path(".studio") / "locks"  # under STUDIO_HOME's saves folder: one set for every visitor and studio
CHECK_MEMORY_MB = 4096  # address space of a pre-launch check (a hostile file fails there, not in the studio)
CHECK_TIMEOUT = 300.0
logger = logging.getLogger(__name__)


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Hold the studio-wide lock `name` (threads of this process and other processes on the same STUDIO_HOME)."""
    folder = saves_dir() / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    # flock locks belong to an open file description: each call opens its own, so threads exclude each other too.
    with file_lock(folder / f"{name}.lock"):
        yield


def spawn(argv: list[str], *, cwd: Path, log: Path, env: Mapping[str, str] | None = None,
          stderr: Path | None = None, on_exit: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Start `argv` in its own session; stdout (and stderr unless given apart) appended to `log`.

    `on_exit` runs (in the reaping thread) once the child has ended: the queue starts the next job there.
    Returns `{"pid", "pid_start_time"}` to record in the caller's state file.
    """
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log, "ab") as out, open(stderr or os.devnull, "ab") as err:
        child = subprocess.Popen(argv, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=err if stderr else subprocess.STDOUT, env=child_env, start_new_session=True)

    def reap() -> None:
        child.wait()
        if on_exit is not None:
            try:
                on_exit()
            except Exception:  # a failed follow-up must not pass unnoticed, nor kill anything else
                logger.exception("after process %d ended", child.pid)

    # Reap it when it ends, so no zombie lingers in the studio's process table; state files say what happened.
    threading.Thread(target=reap, name=f"reap-{child.pid}", daemon=True).start()
    return {"pid": child.pid, "pid_start_time": process_start_time(child.pid)}


def engine_command(*args: str) -> list[str]:
    """The argument list that runs `python -m engine <args>` with this studio's interpreter."""
    return [sys.executable, "-m", "engine", *args]


def alive(pid: Any, start_time: Any) -> bool:
    """Whether `pid` is still the process that was recorded with `start_time` (malformed values: not alive)."""
    return is_process_alive(pid, start_time)


def _signal_group(pid: int, sig: int) -> None:
    """Signal `pid`'s process group, or `pid` alone when it shares ours (started from this very shell)."""
    try:
        pgid = os.getpgid(pid)
        if pgid == os.getpgrp():
            os.kill(pid, sig)
        else:
            os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def request_stop(pid: int) -> None:
    """SIGTERM to `pid`'s group: the engine saves what it can and writes its final state."""
    _signal_group(pid, signal.SIGTERM)


def kill_tree(pids: list[int]) -> None:
    """SIGKILL `pids` and everything below them (collected first: once a parent dies its children are re-parented)."""
    tree = [*pids, *process_descendants(pids)]
    for pid in pids:
        _signal_group(pid, signal.SIGKILL)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    wait_gone([(pid, None) for pid in tree], 10.0)


def wait_gone(records: list[tuple[int, str | None]], timeout: float) -> bool:
    """Wait until none of the recorded processes is alive; False when `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while any(alive(pid, start) for pid, start in records):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stop(records: list[tuple[int, str | None]], *, grace: float) -> bool:
    """SIGTERM the first recorded process's group, SIGKILL every live one's tree after `grace` seconds.

    Blocks until they are gone; True when they had to be killed.
    """
    live = [(pid, start) for pid, start in records if alive(pid, start)]
    if not live:
        return False
    request_stop(live[0][0])
    if wait_gone(live, grace):
        return False
    kill_tree([pid for pid, start in live if alive(pid, start)])
    return True


def run_json_child(argv: list[str], *, timeout: float, on_timeout: StudioError,
                   on_crash: Callable[[str], StudioError], cwd: Path | None = None,
                   env: Mapping[str, str] | None = None, stdin_text: str | None = None) -> dict[str, Any]:
    """Run a child that answers with one JSON object on its last line of output; return it, or raise the
    StudioError it reports (`"error"`), `on_timeout`, or `on_crash(last words)` when it answered nothing."""
    child_env = {**os.environ, MEMORY_ENV: str(CHECK_MEMORY_MB), **(env or {})}
    try:
        done = subprocess.run(argv, cwd=str(cwd) if cwd else None, env=child_env, input=stdin_text,
                              stdin=None if stdin_text is not None else subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise on_timeout from None
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        # Killed for memory, or a crash: the last lines of its error output are the best cause there is.
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise on_crash(" / ".join(tail)[-400:] or f"exit code {done.returncode}")
    if answer.get("error"):
        raise error_from_json(answer["error"])
    return answer


def run_check(command: str, config_path: Path, *, cwd: Path, env: Mapping[str, str] | None = None,
              timeout: float = CHECK_TIMEOUT) -> dict[str, Any]:
    """Run `python -m engine check <command> <config_path>` and return its result; raise its StudioError."""
    return run_json_child(engine_command("check", command, str(config_path)), cwd=cwd, env=env, timeout=timeout,
                          on_timeout=StudioError("check_timeout", seconds=int(timeout)),
                          on_crash=lambda detail: StudioError("check_crashed", detail=detail))
