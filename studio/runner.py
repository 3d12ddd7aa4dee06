"""Start and abort engine jobs (train, eval, export): each runs in its own process; the run folder is the only
shared state.

A start goes through the queue (`studio.queue`): admitted with every check, started at once when its devices are
free, queued otherwise. Torch-free: the studio decides nothing that needs torch (the engine re-launches itself under
torchrun when it sees several GPUs); checks that read the user's data run in an engine process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from engine.runfolder import list_checkpoints, read_status, write_status
from studio import queue, supervisor
from studio.queue import JOBS, find_live_runs, resolve_run_dir

__all__ = ["JOBS", "abort_run", "find_live_runs", "resolve_run_dir", "start_run"]


def start_run(config: dict[str, Any], run_dir: str | Path, *, lang: str = "en", saves: Path | None = None,
              command: str = "train", devices: list[int] | None = None, env: dict[str, str] | None = None) -> dict:
    """Validate `config` (flat keys), write it into `run_dir` and start `python -m engine <command>` there, or queue
    it while the devices it needs are busy.

    Raises StudioError (show `err.message(lang)`) before anything is written when the config is invalid, its data
    is broken, the demo's limits are reached, the folder is outside the saves folder or busy, or (training) it
    holds results the config does not ask to resume or overwrite. Returns the run's status dict (state `running`,
    the child's pid) when it started, else `{"state": "queued", "position", "expected_start", "entry"}`.
    """
    entry = queue.enqueue_run(config, run_dir, kind=command, devices=devices, lang=lang, saves=saves, env=env)
    queue.dispatch()
    current = next((e for e in queue.list_queue(include_ended=True) if e["id"] == entry["id"]), None)
    if current is None:  # started (a started entry is no longer listed)
        return read_status(Path(entry["run_dir"]))
    if current["state"] == "refused":
        return {"state": "refused", "message": current["message"], "entry": current}
    position, expected = queue.position_and_expected_start(current)
    return {"state": "queued", "position": position, "expected_start": expected, "entry": current}


def _live_processes(status: dict[str, Any]) -> list[tuple[int, str | None]]:
    """The run's processes that are still the ones status.json names (pids are reused: start times must match)."""
    found: list[tuple[int, str | None]] = []
    for pid_key, start_key in (("pid", "pid_start_time"), ("launcher_pid", "launcher_start_time")):
        pid, start = status.get(pid_key), status.get(start_key)
        # An empty start time means the platform has no /proc; None means the status never recorded one.
        if start is not None and supervisor.alive(pid, start) and pid not in [p for p, _ in found]:
            found.append((pid, start))
    return found


def abort_run(run_dir: str | Path, *, grace: float = 30.0, reason: str | None = None) -> bool:
    """Ask a live run to stop (SIGTERM: the engine saves a checkpoint); SIGKILL follows after `grace` seconds.

    `reason` is recorded as the run's error when someone other than its user stops it (the demo's time limit).
    A run still waiting in the queue is taken out of it. Returns False when nothing was running or waiting there.
    The wait runs in a daemon thread, so this returns at once.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status.get("state") != "running":
        entry = queue.find_entry(run_dir)
        if entry is not None:
            queue.cancel(entry["id"])
        return entry is not None
    records = _live_processes(status)
    if not records:
        return False
    # SIGTERM to the training process's group: under torchrun the ranks save before the agent stops them.
    supervisor.request_stop(records[0][0])
    threading.Thread(target=_finish_abort, args=(run_dir, status, records, grace, reason),
                     name=f"abort-{records[0][0]}", daemon=True).start()
    return True


def _finish_abort(run_dir: Path, status: dict[str, Any], records: list[tuple[int, str | None]],
                  grace: float, reason: str | None) -> None:
    """Wait for the run to stop, kill it after `grace`, and make sure its status ends as `aborted`."""
    killed = False
    if not supervisor.wait_gone(records, grace):
        supervisor.kill_tree([pid for pid, start in records if supervisor.alive(pid, start)])
        killed = True
        supervisor.wait_gone(records, 10.0)
    current = read_status(run_dir, reconcile=False)
    # The engine writes its own final state when it can; a `failed` without exit code is only read_status's
    # reconcile of a process that died from our signal.
    if current.get("pid") not in (status.get("pid"), status.get("launcher_pid")):
        return  # another run has started here since
    if current.get("state") == "running" or (current.get("state") == "failed" and current.get("exit_code") is None):
        who = reason or "Stopped by the user."
        error = (f"{who} The process did not stop within {grace:g} s and was killed, so no checkpoint was saved."
                 if killed else f"{who} It stopped before training began.")
        checkpoints = list_checkpoints(run_dir)
        write_status(run_dir, "aborted", exit_code=None, error=error,
                     checkpoint=str(checkpoints[-1]) if checkpoints else None)
    elif reason and current.get("state") == "aborted" and not current.get("error"):
        write_status(run_dir, "aborted", error=reason)  # the engine saved and stopped; say who stopped it
    queue.dispatch()  # its devices are free: the next queued job starts
