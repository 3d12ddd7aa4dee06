"""Start and abort training runs: the engine runs in its own process session; the run folder is the only shared state.

Torch-free: the studio decides nothing that needs torch (the engine re-launches itself under torchrun when it
sees several GPUs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from engine.config import config_from_dict, save_config, validate_config
from engine.data.pipeline import check_local_data
from engine.errors import ConfigError, StudioError
from engine.paths import studio_home
from engine.runfolder import (
    CONFIG_FILE,
    RUNNING_LOG,
    STATUS_FILE,
    has_results,
    is_locked,
    is_process_alive,
    list_checkpoints,
    mark_running,
    process_descendants,
    read_status,
    write_status,
)
from studio import demo_mode
from studio.workspace import home, require_visitor, saves_dir, workspaces_root

FINAL_STATES = ("finished", "failed", "aborted")
_START_LOCK = threading.Lock()


def resolve_run_dir(run_dir: str | Path, saves: Path | None = None) -> Path:
    """The absolute run folder; refuses `..` and anything that is not a folder strictly inside the saves folder."""
    saves = Path(saves or saves_dir()).resolve()
    given = Path(run_dir).expanduser()
    if ".." in given.parts:
        raise StudioError("output_dir_outside_saves", path=str(run_dir), saves=str(saves))
    resolved = (given if given.is_absolute() else home() / given).resolve()
    if resolved == saves or not resolved.is_relative_to(saves):
        raise StudioError("output_dir_outside_saves", path=str(run_dir), saves=str(saves))
    return resolved


def find_live_runs(saves: Path | None = None) -> list[Path]:
    """Run folders under `saves` (any depth) whose status says running and whose process is still alive."""
    saves = Path(saves or saves_dir())
    live = []
    for root, dirs, files in os.walk(saves):
        # Checkpoints and hidden folders never hold a run's status: skip them so big saves folders stay cheap.
        dirs[:] = [d for d in dirs if not d.startswith((".", "checkpoint-"))]
        if STATUS_FILE in files and read_status(Path(root)).get("state") == "running":
            live.append(Path(root))
    return sorted(live)


def _check_resume(config: Any, run_dir: Path) -> None:
    """Refuse a resume that the engine would refuse, before anything is written."""
    value = config.training.resume_from_checkpoint
    if value in (None, False, ""):
        return
    if value is True or str(value).lower() == "true":
        if not list_checkpoints(run_dir):
            raise ConfigError("no_checkpoint_to_resume", path=str(run_dir))
    elif not Path(str(value)).is_dir():
        raise ConfigError("checkpoint_missing", path=str(value))


def _check_train(cfg: Any, run_dir: Path) -> None:
    validate_config(cfg, "train")
    check_local_data(cfg)  # a broken or empty dataset is refused here, before anything starts
    _check_resume(cfg, run_dir)
    asks_reuse = cfg.training.resume_from_checkpoint not in (None, False, "") or cfg.training.overwrite_output_dir
    if has_results(run_dir) and not asks_reuse:
        raise ConfigError("run_dir_has_results", path=str(run_dir))


def _check_eval(cfg: Any, run_dir: Path) -> None:
    from engine.eval import check_eval_config

    check_eval_config(cfg)


def _check_export(cfg: Any, run_dir: Path) -> None:
    from engine.export.run import check_export

    check_export(cfg)


# Each engine command the studio runs as a job: the config key naming its folder, and its pre-launch checks.
JOBS: dict[str, tuple[str, Any]] = {
    "train": ("output_dir", _check_train),
    "eval": ("output_dir", _check_eval),
    "export": ("export_dir", _check_export),
}


def start_run(config: dict[str, Any], run_dir: str | Path, *, lang: str = "en", saves: Path | None = None,
              command: str = "train") -> dict:
    """Validate `config` (flat keys), write it into `run_dir` and start `python -m engine <command>` there.

    Raises StudioError (show `err.message(lang)`) before anything is written when the config is invalid, another
    run is live, the folder is outside the saves folder, or (training) it holds results the config does not ask to
    resume or overwrite. Returns the run's status dict (state `running`, the child's pid).
    """
    with _START_LOCK:  # two visitors of a demo must not both take the last free slot
        saves = Path(saves or saves_dir()).resolve()
        run_dir = resolve_run_dir(run_dir, saves)
        folder_key, check = JOBS[command]
        config = {**config, folder_key: str(run_dir)}
        settings = demo_mode.active()
        if settings is not None:
            config = demo_mode.apply_limits(config, command, require_visitor(), settings)
        cfg = config_from_dict(config, source="the studio settings")
        live = find_live_runs(saves)
        if live:
            raise StudioError("run_already_live", path=str(live[0]))
        if settings is not None and len(find_live_runs(workspaces_root())) >= settings.runs_total:
            raise StudioError("demo_busy", limit=settings.runs_total)
        if is_locked(run_dir):
            raise ConfigError("run_locked", path=str(run_dir))
        check(cfg, run_dir)
        return _launch(cfg, run_dir, command, lang)


def _launch(cfg: Any, run_dir: Path, command: str, lang: str) -> dict:
    """Write the config and start the engine on it; the run folder records the child."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    log_path = (run_dir / RUNNING_LOG).resolve()
    env = {**os.environ, "STUDIO_RUNNING_LOG": str(log_path), "PYTHONUNBUFFERED": "1",
           "STUDIO_HOME": str(studio_home()), "STUDIO_LANG": lang}
    command_line = [sys.executable, "-m", "engine", command, str(run_dir / CONFIG_FILE)]
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command_line, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
    status = mark_running(run_dir, pid=child.pid)
    # The launcher is recorded apart from `pid`: under torchrun rank 0 replaces `pid` with its own.
    status = write_status(run_dir, "running", launcher_pid=child.pid, launcher_start_time=status["pid_start_time"])
    # Reap the child so it never lingers as a zombie; a missing final state is reconciled by read_status.
    threading.Thread(target=child.wait, name=f"reap-{child.pid}", daemon=True).start()
    return status


def _signal_group(pid: int, sig: int) -> None:
    """Signal `pid`'s process group, or `pid` alone when it shares ours (a run started from this very shell)."""
    try:
        pgid = os.getpgid(pid)
        if pgid == os.getpgrp():
            os.kill(pid, sig)
        else:
            os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _live_processes(status: dict[str, Any]) -> list[int]:
    """The run's processes that are still the ones status.json names (pids are reused: start times must match)."""
    found = []
    for pid_key, start_key in (("pid", "pid_start_time"), ("launcher_pid", "launcher_start_time")):
        pid, start = status.get(pid_key), status.get(start_key)
        # An empty start time means the platform has no /proc; None means the status never recorded one.
        if pid and start is not None and pid not in found and is_process_alive(pid, start):
            found.append(pid)
    return found


def abort_run(run_dir: str | Path, *, grace: float = 30.0) -> bool:
    """Ask a live run to stop (SIGTERM: the engine saves a checkpoint); SIGKILL follows after `grace` seconds.

    Returns False when nothing was running there. The wait runs in a daemon thread, so this returns at once.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status.get("state") != "running":
        return False
    pids = _live_processes(status)
    if not pids:
        return False
    # SIGTERM goes to the training process only: torchrun's agent would kill the ranks before they save.
    _signal_group(pids[0], signal.SIGTERM)
    threading.Thread(target=_finish_abort, args=(run_dir, status, grace), name=f"abort-{pids[0]}",
                     daemon=True).start()
    return True


def _wait_gone(status: dict[str, Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _live_processes(status):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _finish_abort(run_dir: Path, status: dict[str, Any], grace: float) -> None:
    """Wait for the run to stop, kill it after `grace`, and make sure its status ends as `aborted`."""
    killed = False
    if not _wait_gone(status, grace):
        live = _live_processes(status)
        # Collect the whole tree first: once the launcher dies its children are re-parented and lost from view.
        for pid in [*reversed(live), *process_descendants(live)]:
            _signal_group(pid, signal.SIGKILL)
        killed = True
        _wait_gone(status, 10.0)
    current = read_status(run_dir, reconcile=False)
    # The engine writes its own final state when it can; a `failed` without exit code is only read_status's
    # reconcile of a process that died from our signal.
    if current.get("pid") not in (status.get("pid"), status.get("launcher_pid")):
        return  # another run has started here since
    if current.get("state") == "running" or (current.get("state") == "failed" and current.get("exit_code") is None):
        error = (f"Stopped by the user: the process did not stop within {grace:g} s and was killed, "
                 "so no checkpoint was saved." if killed else "Stopped by the user before training began.")
        checkpoints = list_checkpoints(run_dir)
        write_status(run_dir, "aborted", exit_code=None, error=error,
                     checkpoint=str(checkpoints[-1]) if checkpoints else None)
