"""Start and abort engine jobs (train, eval, export): each runs in its own process; the run folder is the only
shared state.

Torch-free: the studio decides nothing that needs torch (the engine re-launches itself under torchrun when it
sees several GPUs). Checks that read the user's data run in an engine process (`studio.supervisor.run_check`),
never here; the studio-wide start lock is held only while live jobs are counted and the new one is started.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from engine.config import config_from_dict, save_config
from engine.errors import ConfigError, StudioError
from engine.paths import studio_home
from engine.runfolder import (
    CONFIG_FILE,
    RUNNING_LOG,
    STATUS_FILE,
    has_results,
    is_locked,
    list_checkpoints,
    mark_running,
    read_status,
    write_status,
)
from studio import demo_mode, supervisor
from studio.workspace import home, require_visitor, same_client_workspaces, saves_dir, workspaces_root

CHECKS = Path(".studio") / "checks"  # configs under check, inside the saves folder they belong to


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


def _check_reuse(config: Any, run_dir: Path, base: Path) -> None:
    """Refuse a resume or a reuse of the folder that the engine would refuse, before anything is written."""
    value = config.training.resume_from_checkpoint
    if value in (None, False, ""):
        if has_results(run_dir) and not config.training.overwrite_output_dir:
            raise ConfigError("run_dir_has_results", path=str(run_dir))
        return
    if value is True or str(value).lower() == "true":
        if not list_checkpoints(run_dir):
            raise ConfigError("no_checkpoint_to_resume", path=str(run_dir))
    elif not (base / Path(str(value)).expanduser()).is_dir():  # the engine runs in `base`: relative means the same
        raise ConfigError("checkpoint_missing", path=str(value))


# Each engine command the studio runs as a job: the config key naming its folder.
JOBS: dict[str, str] = {"train": "output_dir", "eval": "output_dir", "export": "export_dir"}


def start_run(config: dict[str, Any], run_dir: str | Path, *, lang: str = "en", saves: Path | None = None,
              command: str = "train") -> dict:
    """Validate `config` (flat keys), write it into `run_dir` and start `python -m engine <command>` there.

    Raises StudioError (show `err.message(lang)`) before anything is written when the config is invalid, its data
    is broken, another job is live (or the demo is full), the folder is outside the saves folder, or (training)
    it holds results the config does not ask to resume or overwrite. Returns the run's status dict (state
    `running`, the child's pid).
    """
    saves = Path(saves or saves_dir()).resolve()
    run_dir = resolve_run_dir(run_dir, saves)
    config = {**config, JOBS[command]: str(run_dir)}
    settings = demo_mode.active()
    base, env = home(), {}
    if settings is not None:
        base = require_visitor()
        config = demo_mode.apply_limits(config, command, base, settings)
        env = demo_mode.job_env(base)
    cfg = config_from_dict(config, source="the studio settings")
    _refuse_busy(saves, settings)
    if is_locked(run_dir):
        raise ConfigError("run_locked", path=str(run_dir))
    if command == "train":
        _check_reuse(cfg, run_dir, base)
    result = _run_check(cfg, command, saves, base, env)
    if settings is not None:
        demo_mode.check_budgets(config, command, result.get("rows"), settings)
    with supervisor.exclusive("jobs"):  # two clicks or two studios must not both take the last free slot
        _refuse_busy(saves, settings)
        if is_locked(run_dir):
            raise ConfigError("run_locked", path=str(run_dir))
        return _launch(cfg, run_dir, command, lang, base, env)


def _run_check(cfg: Any, command: str, saves: Path, base: Path, env: dict[str, str]) -> dict[str, Any]:
    """The engine's pre-launch checks of `cfg`, in their own process, from a config file outside the run folder."""
    folder = saves / CHECKS
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=f"{command}-", suffix=".yaml")
    path = Path(name)
    try:
        os.close(handle)
        save_config(cfg, path)
        return supervisor.run_check(command, path, cwd=base, env=env)
    finally:
        path.unlink(missing_ok=True)


def _refuse_busy(saves: Path, settings: Any) -> None:
    """Refuse a start while this visitor (or the demo as a whole) already runs as many jobs as allowed."""
    live = find_live_runs(saves)
    if settings is None:
        if live:
            raise StudioError("run_already_live", path=str(live[0]))
        return
    demo_mode.check_capacity(len(live), _live_for_client(saves), len(find_live_runs(workspaces_root())), settings)


def _live_for_client(saves: Path) -> int:
    """Live jobs in every workspace the current visitor's client (their address) has opened."""
    return sum(len(find_live_runs(folder / "saves")) for folder in same_client_workspaces(saves.parent))


def _launch(cfg: Any, run_dir: Path, command: str, lang: str, base: Path, env: dict[str, str]) -> dict:
    """Write the config and start the engine on it from `base`; the run folder records the child."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    log_path = (run_dir / RUNNING_LOG).resolve()
    child_env = {**env, "STUDIO_RUNNING_LOG": str(log_path), "STUDIO_HOME": str(studio_home()),
                 "STUDIO_LANG": lang}
    child = supervisor.spawn(supervisor.engine_command(command, str(run_dir / CONFIG_FILE)), cwd=base,
                             log=log_path, env=child_env)
    status = mark_running(run_dir, pid=child["pid"])
    # The launcher is recorded apart from `pid`: under torchrun rank 0 replaces `pid` with its own.
    return write_status(run_dir, "running", launcher_pid=child["pid"], launcher_start_time=status["pid_start_time"])


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
    Returns False when nothing was running there. The wait runs in a daemon thread, so this returns at once.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status.get("state") != "running":
        return False
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
