"""One lifecycle for every engine command that writes a run folder (train, eval, export): a job kind adds its body.

`run_job(job, body)`: take the folder's lock (across processes) → clear earlier results when the user asked to
overwrite → tee stdout/stderr into running_log.txt → write the resolved config (atomically) → mark `running`
with the job kind as `task` → run the body → remove checkpoints a failed save left half-written → write the final
state with its real cause (disk full, out of memory, a config error, killed by a second stop) → release.
Also here: how runs are named when no folder is given, the progress fields of trainer_log.jsonl lines, and
SIGTERM as a stop request.

Torch-free: a body imports what it needs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.config import RunConfig, save_config
from engine.errors import StudioError
from engine.failures import describe_failure
from engine.paths import saves_dir
from engine.runfolder import (
    CONFIG_FILE,
    RunLock,
    attach_running_log,
    mark_running,
    remove_incomplete_checkpoints,
    write_status,
)

logger = logging.getLogger("engine")

KINDS = ("train", "eval", "export")


def default_run_dir(config: RunConfig, kind: str) -> str:
    """saves/<model>/<method>/<kind>_<time>, as the studio names runs."""
    model = Path(config.model.model_name_or_path.rstrip("/")).name or "model"
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return str(saves_dir() / model / config.finetuning.finetuning_type / f"{kind}_{stamp}")


def format_duration(seconds: float) -> str:
    """`H:MM:SS`, as LLaMA-Factory writes elapsed and remaining time."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(done: int, total: int, elapsed: float, *, first: int = 0) -> dict[str, Any]:
    """The fields every job's trainer_log.jsonl line starts with; the remaining time follows the pace since `first`
    (the step a resumed run started from)."""
    pace = done - first
    remaining = elapsed / pace * max(total - done, 0) if pace > 0 else 0.0
    return {"current_steps": done, "total_steps": total,
            "percentage": round(done / total * 100, 2) if total else 0.0,
            "elapsed_time": format_duration(elapsed), "remaining_time": format_duration(remaining)}


class StopSignal:
    """SIGTERM and SIGINT as a stop request: the first sets `requested`, so the body stops at its next safe point
    (training saves a checkpoint first); a second one, or the first when `immediate`, raises KeyboardInterrupt."""

    def __init__(self, immediate: bool = False) -> None:
        self.requested = False
        self.immediate = immediate
        self._previous: tuple[Any, Any] | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or self.immediate:
            self.requested = True
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        """Handle SIGTERM and SIGINT in this process (only the main thread may; elsewhere signals stay as they are)."""
        try:
            self._previous = (signal.signal(signal.SIGTERM, self._handle), signal.signal(signal.SIGINT, self._handle))
        except ValueError:
            self._previous = None

    def uninstall(self) -> None:
        """Give SIGTERM and SIGINT back to their previous handlers."""
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous[0])
            signal.signal(signal.SIGINT, self._previous[1])
            self._previous = None


@dataclass
class Job:
    """One job in its run folder: what kind, where, with which config, and how it reacts to a stop."""

    kind: str
    run_dir: Path
    config: RunConfig
    stop: StopSignal = field(default_factory=StopSignal)
    main: bool = True
    """Rank 0 or the only process: the one that writes the folder (other ranks run the body only)."""
    clear: Callable[[Path], None] | None = None
    """Removes earlier results, under the lock (only set when the user asked to overwrite)."""
    interrupted: str = "Stopped before it finished."
    """The error recorded when a stop cannot wait for a safe point."""


def run_job(job: Job, body: Callable[[], dict[str, Any] | None]) -> int:
    """Run `body` as `job` and leave a final status; returns the process exit code (0 finished or aborted).

    `body` returns extra status fields (e.g. the checkpoint an abort saved) or None. A locked folder raises the
    ConfigError `run_locked` before anything is written: another process owns that folder's status.
    """
    lock = RunLock(job.run_dir)
    if job.main:
        lock.acquire()
    restore_output: Callable[[], None] = lambda: None  # noqa: E731
    try:
        job.stop.install()
        try:
            if job.main:
                restore_output = attach_running_log(job.run_dir)
                _start(job)
            extra = body() or {}
        except KeyboardInterrupt:
            return _finish(job, "aborted", 0, job.interrupted)
        except BaseException as err:  # noqa: BLE001 - every crash must end as a recorded `failed`
            if not isinstance(err, StudioError):
                traceback.print_exc()
            return _finish(job, "failed", 1, describe_failure(err, job.run_dir, job.kind))
        finally:
            job.stop.uninstall()
        return _finish(job, "aborted" if job.stop.requested else "finished", 0, None, **extra)
    finally:
        restore_output()
        lock.release()


def _start(job: Job) -> None:
    """Everything before the body, under the lock."""
    # A save killed mid-way (SIGKILL, power loss) left no one to clean up: its folder must not look resumable.
    for folder in remove_incomplete_checkpoints(job.run_dir):
        logger.warning("Removed %s: an earlier run stopped while writing it.", folder)
    if job.clear is not None:
        job.clear(job.run_dir)
    save_config(job.config, job.run_dir / CONFIG_FILE)
    mark_running(job.run_dir, task=job.kind)


def share_files(run_dir: Path) -> None:
    """Give the job's files the permissions the user's umask asks for. Some writers (safetensors' atomic save of the
    weights) create files readable by their owner only, and then a teammate, a web server or a container's host
    cannot read the result."""
    mask = os.umask(0)
    os.umask(mask)
    wanted = 0o666 & ~mask
    if wanted == 0o600:
        return
    for path in run_dir.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mode & 0o777 == 0o600:
                path.chmod(wanted)
        except OSError:
            continue  # a file removed meanwhile, or not ours: leave it


def _finish(job: Job, state: str, code: int, error: str | None, **extra: Any) -> int:
    """The final state, after removing what a failed save left half-written (which may free the disk)."""
    if not job.main:
        return code
    removed = remove_incomplete_checkpoints(job.run_dir)
    share_files(job.run_dir)
    if removed and error:
        error += f" The half-written {', '.join(p.name for p in removed)} was removed."
    if error:
        print(f"[{state}] {error}", file=sys.stderr)
    try:
        write_status(job.run_dir, state, exit_code=code, error=error, **extra)
    except OSError as err:  # a full disk can refuse even this; readers then report the dead process themselves
        print(f"Could not record the final state in {job.run_dir}: {err}", file=sys.stderr)
    return code
