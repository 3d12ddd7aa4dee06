"""The job queue: every engine job the studio starts (train, eval, export) is admitted here, waits in files under
STUDIO_HOME, and is started by `dispatch` when the devices it needs are free.

- An entry is one JSON file under `saves/.studio/queue/` (written atomically): id, kind, run folder, the devices it
  needs, created time, order, the workspace it belongs to (demo limits), state (`queued`, `started`, `cancelled`,
  `refused` with its message). The run folder holds the config (written at enqueue), so a restart loses nothing.
- Admission (`enqueue_run`) runs every check a start needs (demo limits, `engine check` in its own process,
  per-visitor capacity, devices that exist). `dispatch` re-validates the config's own values in-process (the data
  was checked at enqueue: a second engine process would delay every start by seconds) and starts, in order, each
  entry whose devices are free, with its own CUDA_VISIBLE_DEVICES.
- Devices: a list of GPU indices, a count, or None (automatic: every GPU of the machine, as the engine takes them).
  Without GPUs one job runs at a time unless STUDIO_MAX_CPU_JOBS allows more.

Torch-free. Enqueue, dispatch, move and cancel hold `supervisor.exclusive("queue")` (threads and studios alike).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from engine import paths
from engine.atomic_write import write_json_atomic
from engine.config import config_from_dict, save_config
from engine.config.validate import check_values
from engine.errors import ConfigError, StudioError
from engine.runfolder import (
    CONFIG_FILE,
    RUNNING_LOG,
    STATUS_FILE,
    TRAINER_LOG,
    has_results,
    is_locked,
    list_checkpoints,
    mark_running,
    read_status,
    tail_text,
    write_status,
)
from studio import capabilities, demo_mode, supervisor
from studio.workspace import home, require_visitor, same_client_workspaces, saves_dir, workspaces_root

QUEUE = Path(".studio") / "queue"  # under STUDIO_HOME's saves folder: one queue for every visitor and studio
CHECKS = Path(".studio") / "checks"  # configs under check, inside the saves folder they belong to
# Each engine command the studio runs as a job: the config key naming its folder.
JOBS: dict[str, str] = {"train": "output_dir", "eval": "output_dir", "export": "export_dir", "judge": "output_dir"}
WATCH_S = 0.1  # how often the launching studio looks whether a job it started has ended
ENDED_KEEP_S = 24 * 3600.0  # cancelled and refused entries are shown (and kept) this long
Devices = list[int] | int | None
logger = logging.getLogger(__name__)


# --- admission ---------------------------------------------------------------------------------------------------

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


def check_reuse(config: Any, run_dir: Path, base: Path) -> None:
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


def check_devices(devices: Devices, gpus: int | None = None) -> None:
    """Refuse at once a job no device of this machine could ever hold (too many GPUs, indices that do not exist)."""
    gpus = capabilities.device_count() if gpus is None else gpus
    if devices is None:
        return
    wanted = devices if isinstance(devices, int) else len(devices)
    if gpus == 0 and wanted:
        raise StudioError("queue_no_gpu", count=wanted)
    if wanted > gpus:
        raise StudioError("queue_too_many_devices", count=wanted, available=gpus)
    missing = [] if isinstance(devices, int) else sorted({d for d in devices if not 0 <= d < gpus})
    if missing:
        raise StudioError("queue_no_such_device", devices=", ".join(map(str, missing)), available=gpus)


def enqueue_run(config: dict[str, Any], run_dir: str | Path, *, kind: str = "train", devices: list[int] | None = None,
                lang: str = "en", saves: Path | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate `config` (flat keys) as a start would, write it into `run_dir` and queue it; returns the entry.

    `env` may hold the process count the device settings chose (FORCE_TORCHRUN, NPROC_PER_NODE; nothing else, and
    nothing in the demo).

    Raises StudioError (show `err.message(lang)`) before anything is written when the config is invalid, its data
    is broken, the folder is outside the saves folder or busy, the visitor already has as many jobs running or
    queued as the demo allows, or no device of this machine could hold the job.
    """
    saves = Path(saves or saves_dir()).resolve()
    run_dir = resolve_run_dir(run_dir, saves)
    config = {**config, JOBS[kind]: str(run_dir)}
    settings = demo_mode.active()
    base, check_env = home(), {}
    if settings is not None:
        base = require_visitor()
        config = demo_mode.apply_limits(config, kind, base, settings)
        check_env = demo_mode.job_env(base)
    cfg = config_from_dict(config, source="the studio settings")
    check_devices(devices)
    if settings is not None:
        _check_capacity(base, settings)
    if is_locked(run_dir):
        raise ConfigError("run_locked", path=str(run_dir))
    if kind == "train":
        check_reuse(cfg, run_dir, base)
    result = _run_check(cfg, kind, saves, base, check_env)
    if settings is not None:
        demo_mode.check_budgets(config, kind, result.get("rows"), settings)
    with supervisor.exclusive("queue"):  # two clicks or two studios must not both take the last slot
        entries = _read_entries()
        if settings is not None:
            _check_capacity(base, settings, entries)
        if is_locked(run_dir) or any(e["run_dir"] == str(run_dir) for e in entries if e["state"] == "queued"):
            raise ConfigError("run_locked", path=str(run_dir))
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG_FILE)
        entry = {"id": f"{time.time_ns():x}-{secrets.token_hex(3)}", "kind": kind, "run_dir": str(run_dir),
                 "devices": devices, "created": time.time(), "workspace": str(base), "demo": settings is not None,
                 "lang": lang, "state": "queued", "message": None, "env": {} if settings else launch_extra(env),
                 "order": max([e["order"] for e in entries], default=0.0) + 1.0}
        _write(entry)
    return entry


def launch_extra(env: dict[str, str] | None) -> dict[str, str]:
    """The allowed part of a job's extra environment: the torchrun switch and a process count."""
    extra = {key: str(value) for key, value in (env or {}).items() if key in ("FORCE_TORCHRUN", "NPROC_PER_NODE")}
    return {key: value for key, value in extra.items() if value.isdigit()}


def _check_capacity(base: Path, settings: Any, entries: list[dict[str, Any]] | None = None) -> None:
    """Demo: a visitor's (and their client's) jobs, running or queued, stay within the per-visitor limits. The
    demo-wide limit is not checked here: an entry waits for it in the queue."""
    entries = _read_entries() if entries is None else entries
    queued = [Path(e["workspace"]) for e in entries if e["state"] == "queued"]
    client = same_client_workspaces(base)
    mine = len(find_live_runs(base / "saves")) + queued.count(base)
    theirs = sum(len(find_live_runs(folder / "saves")) for folder in client) + sum(w in client for w in queued)
    demo_mode.check_capacity(mine, theirs, 0, settings)


# --- the entries ---------------------------------------------------------------------------------------------------

def _folder() -> Path:
    return paths.saves_dir() / QUEUE


def _write(entry: dict[str, Any]) -> None:
    _folder().mkdir(parents=True, exist_ok=True)
    write_json_atomic(_folder() / f"{entry['id']}.json", entry)


def _read_entries() -> list[dict[str, Any]]:
    """Every entry file, in queue order (unreadable files are skipped: a half-copied home must not stop the queue)."""
    entries = []
    for path in _folder().glob("*.json") if _folder().is_dir() else []:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and {"id", "run_dir", "state", "order"} <= entry.keys():
            entries.append(entry)
    return sorted(entries, key=lambda e: (e["order"], e["id"]))


def _visible(entry: dict[str, Any]) -> bool:
    """Demo: a visitor sees only the entries of their own workspace; everyone else sees every entry."""
    return demo_mode.active() is None or entry.get("workspace") == str(home())


def list_queue(*, include_ended: bool = False) -> list[dict[str, Any]]:
    """The queued entries this user may see, in order (with recently cancelled and refused ones when asked)."""
    states = ("queued", "cancelled", "refused") if include_ended else ("queued",)
    return [e for e in _read_entries() if e["state"] in states and _visible(e)]


def find_entry(run_dir: str | Path) -> dict[str, Any] | None:
    """The queued entry of a run folder, if it waits in the queue."""
    return next((e for e in list_queue() if e["run_dir"] == str(Path(run_dir))), None)


def move(entry_id: str, where: str) -> None:
    """Move a queued entry `up`, `down` or to the `top` (among the entries this user sees)."""
    with supervisor.exclusive("queue"):
        entries = list_queue()
        index = next((i for i, e in enumerate(entries) if e["id"] == entry_id), None)
        if index is None:
            raise StudioError("queue_not_found", id=entry_id)
        # Entries only swap places among themselves: a demo visitor reorders their own jobs and never gets ahead of
        # another visitor's.
        steps = {"up": [index - 1], "down": [index + 1], "top": list(range(index - 1, -1, -1))}.get(where, [])
        for other in (i for i in steps if 0 <= i < len(entries)):
            entry, neighbour = entries[index], entries[other]
            entry["order"], neighbour["order"] = neighbour["order"], entry["order"]
            entries[index], entries[other] = neighbour, entry
            index = other
            _write(entry)
            _write(neighbour)


def cancel(entry_id: str) -> dict[str, Any]:
    """Take a queued entry out of the queue; its run folder keeps the config, no other run's files are touched."""
    with supervisor.exclusive("queue"):
        entry = next((e for e in list_queue() if e["id"] == entry_id), None)
        if entry is None:
            raise StudioError("queue_not_found", id=entry_id)
        entry.update(state="cancelled", ended=time.time())
        _write(entry)
    return entry


def drop_workspace(workspace: Path) -> int:
    """Cancel every queued entry of a demo workspace that is being deleted; returns how many."""
    with supervisor.exclusive("queue"):
        dropped = [e for e in _read_entries() if e["state"] == "queued" and e.get("workspace") == str(workspace)]
        for entry in dropped:
            entry.update(state="cancelled", ended=time.time())
            _write(entry)
    return len(dropped)


# --- when it starts ------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def _remaining_seconds(run_dir: Path) -> float | None:
    """The remaining time a running job last logged in trainer_log.jsonl (None when it logged none yet)."""
    for line in reversed(tail_text(run_dir / TRAINER_LOG, max_lines=20, max_bytes=8192).splitlines()):
        try:
            text = str(json.loads(line).get("remaining_time") or "")
        except (ValueError, AttributeError):
            continue
        found = _DURATION.match(text)
        if found:
            days, h, m, s = (int(x or 0) for x in found.groups())
            return float(((days * 24 + h) * 60 + m) * 60 + s)
    return None


def position_and_expected_start(entry: dict[str, Any]) -> tuple[int, float | None]:
    """(1-based position in the whole queue, the expected start as epoch seconds or None).

    The estimate comes from the running jobs' remaining_time: the n-th waiting entry starts when the n-th running
    job ends. Beyond the running jobs, or while one has not logged a step, it is unknown (None).
    """
    entries = _read_entries()
    queued = [e for e in entries if e["state"] == "queued"]
    position = next((i for i, e in enumerate(queued) if e["id"] == entry["id"]), len(queued)) + 1
    running = [e for e in entries if e["state"] == "started"]
    left = sorted(_remaining_seconds(Path(e["run_dir"])) or float("inf") for e in running
                  if read_status(Path(e["run_dir"]), reconcile=False).get("state") == "running")
    if position > len(left) or left[position - 1] == float("inf"):
        return position, None
    return position, time.time() + left[position - 1]


# --- dispatch ------------------------------------------------------------------------------------------------------

def max_cpu_jobs() -> int:
    """How many jobs may run at once on a machine without GPUs (STUDIO_MAX_CPU_JOBS, default 1)."""
    try:
        return max(1, int(os.environ.get("STUDIO_MAX_CPU_JOBS", "1")))
    except ValueError:
        return 1


def _pick(devices: Devices, gpus: int, busy: set[int]) -> list[int] | str | None:
    """The GPU indices an entry would get now; None while they are busy; a message when some no longer exist."""
    if devices is None:
        wanted = list(range(gpus))
    elif isinstance(devices, int):
        free = [d for d in range(gpus) if d not in busy]
        return free[:devices] if len(free) >= devices else None
    else:
        wanted = list(devices)
    missing = [d for d in wanted if d >= gpus]
    if missing:
        return f"GPU {', '.join(map(str, missing))} not present on this machine ({gpus} found); waiting for it."
    return wanted if not busy & set(wanted) else None


def _visible_ids(indices: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for the studio's GPU `indices` (the studio's own CUDA_VISIBLE_DEVICES maps them)."""
    own = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return ",".join(own[i] if own and i < len(own) else str(i) for i in indices)


def _prune(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The started entries still running; the files of ended ones (and of old cancelled or refused ones) go."""
    running = []
    for entry in entries:
        if entry["state"] == "started":
            if read_status(Path(entry["run_dir"])).get("state") == "running":
                running.append(entry)
            else:
                (_folder() / f"{entry['id']}.json").unlink(missing_ok=True)  # the run folder says how it ended
        elif entry["state"] in ("cancelled", "refused") and time.time() - entry.get("ended", 0) > ENDED_KEEP_S:
            (_folder() / f"{entry['id']}.json").unlink(missing_ok=True)
    return running


def _untracked(running: list[dict[str, Any]]) -> int:
    """Live runs the queue did not start (the command line, an older studio): they hold a slot and every GPU."""
    root = workspaces_root() if demo_mode.active() is not None else paths.saves_dir()
    tracked = {e["run_dir"] for e in running}
    return len([d for d in find_live_runs(root) if str(d) not in tracked])


def dispatch() -> list[dict[str, Any]]:
    """Start, in queue order, every queued entry whose devices are free; returns the entries started.

    Cheap while nothing waits (the queue folder and the started jobs' status files are read, nothing is locked or
    walked). Call it after an enqueue, when a job's end is noticed, from the page's timer, and when the studio
    starts.
    """
    entries = _read_entries()
    if not any(e["state"] == "queued" for e in entries):
        _prune(entries)
        return []
    started = []
    with supervisor.exclusive("queue"):
        entries = _read_entries()
        running = _prune(entries)
        untracked = _untracked(running)
        gpus = capabilities.device_count()
        busy = {d for e in running for d in e.get("assigned") or []}
        if untracked:
            busy |= set(range(gpus))  # a job started outside the queue may use any GPU
        count = len(running) + untracked
        settings = demo_mode.active()
        for entry in (e for e in entries if e["state"] == "queued"):
            if settings is not None and count >= settings.runs_total:
                break
            try:  # the machine may have fewer GPUs than at enqueue: a job none of them could hold is refused
                check_devices(entry.get("devices"), gpus)
            except StudioError as err:
                if err.key != "queue_no_such_device":  # a GPU that is gone while enough remain: it waits (below)
                    _refuse(entry, err.message(entry.get("lang", "en")))
                    continue
            if gpus == 0:  # the demo's own limit (RUNS_TOTAL, checked above) sets its CPU slots
                picked: list[int] | str | None = [] if settings is not None or count < max_cpu_jobs() else None
            else:
                picked = _pick(entry.get("devices"), gpus, busy)
            if isinstance(picked, str):
                if entry.get("message") != picked:
                    entry["message"] = picked
                    _write(entry)
                continue
            if picked is None:
                continue
            if _start(entry, picked):
                busy |= set(picked)
                count += 1
                started.append(entry)
    return started


def _start(entry: dict[str, Any], devices: list[int]) -> bool:
    """Re-validate the entry's config and launch it on `devices`; a config that no longer validates refuses it."""
    run_dir, kind, base = Path(entry["run_dir"]), entry["kind"], Path(entry["workspace"])
    env = demo_mode.job_env(base) if entry.get("demo") else launch_extra(entry.get("env"))
    try:
        config = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ConfigError("not_a_run", path=str(run_dir))
        settings = demo_mode.active()
        if entry.get("demo") and settings is not None:
            config = demo_mode.apply_limits(config, kind, base, settings)
        cfg = check_values(config_from_dict(config, source=str(run_dir / CONFIG_FILE)), kind)
        if is_locked(run_dir):
            raise ConfigError("run_locked", path=str(run_dir))
        if kind == "train":
            check_reuse(cfg, run_dir, base)
    except (OSError, yaml.YAMLError, StudioError) as err:
        _refuse(entry, err.message(entry.get("lang", "en")) if isinstance(err, StudioError) else str(err))
        return False
    if devices:
        env = {**env, "CUDA_VISIBLE_DEVICES": _visible_ids(devices)}
        if len(devices) > 1:
            env.update(FORCE_TORCHRUN="1", NPROC_PER_NODE=str(len(devices)))
    status = launch(cfg, run_dir, kind, entry.get("lang", "en"), base, env)
    entry.update(state="started", assigned=devices, pid=status.get("pid"), started=time.time(), message=None)
    _write(entry)
    return True


def _refuse(entry: dict[str, Any], message: str) -> None:
    """Take an entry out of the queue as refused; its run folder is kept and says why (when it holds no run yet)."""
    entry.update(state="refused", message=message, ended=time.time())
    _write(entry)
    run_dir = Path(entry["run_dir"])
    if run_dir.is_dir() and not (run_dir / STATUS_FILE).exists():
        write_status(run_dir, "failed", task=entry["kind"], exit_code=None, error=message)


def launch(cfg: Any, run_dir: Path, command: str, lang: str, base: Path, env: dict[str, str]) -> dict:
    """Write the config and start the engine on it from `base`; the run folder records the child."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    log_path = (run_dir / RUNNING_LOG).resolve()
    child_env = {**env, "STUDIO_RUNNING_LOG": str(log_path), "STUDIO_HOME": str(paths.studio_home()),
                 "STUDIO_LANG": lang}
    # Its end frees its devices: this studio starts the next entry at once (the page timers are the fallback).
    child = supervisor.spawn(supervisor.engine_command(command, str(run_dir / CONFIG_FILE)), cwd=base,
                             log=log_path, env=child_env, on_exit=dispatch)
    status = mark_running(run_dir, pid=child["pid"])
    threading.Thread(target=_watch, args=(run_dir,), name=f"queue-watch-{child['pid']}", daemon=True).start()
    # The launcher is recorded apart from `pid`: under torchrun rank 0 replaces `pid` with its own.
    return write_status(run_dir, "running", launcher_pid=child["pid"], launcher_start_time=status["pid_start_time"])


def _watch(run_dir: Path, every: float = WATCH_S) -> None:
    """Dispatch as soon as the job's status leaves `running`: its process takes a second or more to exit after
    writing its final state (interpreter and CUDA teardown), and the next job need not wait for that."""
    while read_status(run_dir, reconcile=False).get("state") == "running":
        time.sleep(every)
        if not (run_dir / STATUS_FILE).exists():
            return  # the folder was deleted
    try:
        dispatch()
    except Exception:  # the reaper's dispatch and the page timers remain
        logger.exception("starting the next queued job after %s", run_dir)
