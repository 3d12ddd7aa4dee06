"""The run folder, the contract between the engine and the studio: status, logs, lock, and safe reuse.

Torch-free: the studio reads runs through this module while the engine writes them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.atomic_write import write_json_atomic, write_text_atomic
from engine.errors import ConfigError
from engine.processes import is_process_alive, process_descendants, process_start_time, valid_pid

__all__ = [  # the process helpers and the atomic writer live below this module; readers import them from here
    "ALL_RESULTS", "CONFIG_FILE", "FINAL_STATES", "LOCK_FILE", "RESULT_FILES", "RUNNING_LOG", "STATES", "STATUS_FILE",
    "TRAINER_LOG", "RunLock", "TrainerLogWriter", "attach_running_log", "clear_results", "file_lock", "has_results",
    "is_complete_checkpoint", "is_locked", "is_process_alive", "list_checkpoints", "mark_running", "merge_all_results",
    "now_iso", "process_descendants", "process_start_time", "read_status", "read_trainer_log",
    "remove_incomplete_checkpoints", "results_file", "tail_text", "wait_for_state", "write_json_atomic",
    "write_results", "write_status",
]

STATUS_FILE = "status.json"
TRAINER_LOG = "trainer_log.jsonl"
RUNNING_LOG = "running_log.txt"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
ALL_RESULTS = "all_results.json"
# What a run leaves besides its weights, under LLaMA-Factory's names (its tools read them): `<split>_results.json`
# per split, the curves as `training_<metric>.png`. `loss.png` is what runs of earlier versions plotted.
RESULT_FILES = ("trainer_log.jsonl", ALL_RESULTS, "train_results.json", "eval_results.json", "predict_results.json",
                "generated_predictions.jsonl", "model.safetensors", "adapter_model.safetensors",
                "model.safetensors.index.json", "training_loss.png", "loss.png")
STATES = ("running", "finished", "failed", "aborted")
FINAL_STATES = STATES[1:]  # a job in one of these has ended


def now_iso() -> str:
    """The current time as an ISO-8601 string with the time zone."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Update status.json (keeping earlier fields such as started_at) and return it."""
    path = Path(run_dir) / STATUS_FILE
    status = _read_json(path) or {}
    status.update(fields, state=state)
    if state == "running":
        status.setdefault("started_at", now_iso())
        status.update(ended_at=None, exit_code=None, error=None)
    else:
        status.setdefault("ended_at", None)
        status["ended_at"] = status["ended_at"] or now_iso()
    write_json_atomic(path, status)
    return status


def mark_running(run_dir: Path, pid: int | None = None, task: str | None = None) -> dict[str, Any]:
    """Record that this process (or `pid`) is running the folder; `task` names the job kind (train, eval, ...)."""
    pid = pid or os.getpid()
    path = Path(run_dir) / STATUS_FILE
    if path.exists():  # a resumed run: a fresh start time, no stale end
        status = _read_json(path) or {}
        status.pop("started_at", None)
        status.pop("ended_at", None)
        write_json_atomic(path, status)
    fields: dict[str, Any] = {"pid": pid, "pid_start_time": process_start_time(pid)}
    if task is not None:
        fields["task"] = task
    return write_status(run_dir, "running", **fields)


# status.json is small; a bigger file is not one the engine wrote, and reading it whole would stall a reader.
MAX_STATUS_BYTES = 1 << 20


def _read_json(path: Path, limit: int | None = MAX_STATUS_BYTES) -> dict[str, Any] | None:
    """The JSON object in `path`; None when missing, unreadable, not an object, or over `limit` bytes."""
    try:
        with open(path, "rb") as f:
            text = f.read() if limit is None else f.read(limit + 1)
        if limit is not None and len(text) > limit:
            return None
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError, RecursionError):
        return None


def tail_text(path: Path, max_lines: int = 20, max_bytes: int = 16384) -> str:
    """The last lines of a text file (empty when missing)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-max_lines:])


_TEXT_FIELDS = ("pid_start_time", "launcher_start_time", "started_at", "ended_at", "task", "checkpoint")


def clean_status(raw: dict[str, Any]) -> dict[str, Any]:
    """status.json's fields as readers expect them: a known state, pids as ints or None, texts as str or None."""
    status = dict(raw)
    state = status.get("state")
    status["state"] = state if isinstance(state, str) and state in STATES else "unknown"
    for key in ("pid", "launcher_pid"):
        if key in status:
            status[key] = valid_pid(status[key])
    for key in _TEXT_FIELDS:
        if key in status and not isinstance(status[key], str):
            status[key] = None
    if "error" in status and status["error"] is not None and not isinstance(status["error"], str):
        status["error"] = str(status["error"])[:500]
    if "exit_code" in status and type(status["exit_code"]) is not int:
        status["exit_code"] = None
    return status


_OOM_KILLER = re.compile(r"out of memory: kill|oom-kill|oom_reaper|invoked oom-killer", re.IGNORECASE)
_KILLED = re.compile(r"^\s*killed\s*$|\bsignal 9\b|\bSIGKILL\b|exitcode\s*:\s*-9\b", re.IGNORECASE | re.MULTILINE)
_JOB_NAMES = {"train": "training", "eval": "evaluation", "export": "export", "judge": "judge"}


def ended_without_status(status: dict[str, Any], run_dir: Path) -> str:
    """Why a `running` folder has no live process: what the log's tail says about how it ended."""
    tail = tail_text(Path(run_dir) / RUNNING_LOG, max_lines=20)
    last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
    job = _JOB_NAMES.get(str(status.get("task")), "training")
    message = f"The {job} process ended without a final status"
    if _OOM_KILLER.search(tail):
        message += (": it was killed by the system's out-of-memory killer (the machine ran out of RAM; lower "
                    "per_device_train_batch_size or cutoff_len, or close other programs)")
    elif _KILLED.search(tail):
        message += ": it was killed (SIGKILL), by a user or by the system's out-of-memory killer"
    elif valid_pid(status.get("pid")) is None:
        message += ": status.json names no valid process id"
    return f"{message}. Last log line: {last[:300] or '(empty)'}"


def read_status(run_dir: Path, *, reconcile: bool = True) -> dict[str, Any]:
    """The run's status; a `running` run whose process is gone is reported (and, with reconcile, saved) as failed.

    Never raises for what the file holds: a status.json that is not a JSON object reads as state `unknown`.
    """
    run_dir = Path(run_dir)
    path = run_dir / STATUS_FILE
    raw = _read_json(path)
    if raw is None:
        if path.exists():
            return {"state": "unknown", "error": f"{path} is not a status file this studio can read; "
                                                 "delete it if no job is running there."}
        has_results = any((run_dir / name).exists() for name in RESULT_FILES)
        return {"state": "unknown" if has_results else "new"}
    status = clean_status(raw)
    if status["state"] == "running" and not is_process_alive(raw.get("pid"), raw.get("pid_start_time")):
        status.update(state="failed", ended_at=now_iso(), error=ended_without_status(status, run_dir))
        status.setdefault("exit_code", None)
        if reconcile:
            write_json_atomic(path, status)
    return status


def read_trainer_log(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Records appended to trainer_log.jsonl since byte `offset`, and the new offset (partial lines wait)."""
    path = Path(run_dir) / TRAINER_LOG
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # readers skip what they do not understand
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


def results_file(split: str) -> str:
    """The file of one split's final metrics: `train_results.json`, `eval_results.json`, `predict_results.json`."""
    return f"{split}_results.json"


def _results_text(metrics: dict[str, Any]) -> str:
    # As transformers' Trainer.save_metrics lays them out (LLaMA-Factory writes its results through it).
    return json.dumps(metrics, ensure_ascii=False, indent=4, sort_keys=True) + "\n"


def merge_all_results(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Add `metrics` (numbers, strings and flags only) to all_results.json, keeping what earlier splits wrote."""
    path = Path(run_dir) / ALL_RESULTS
    merged = _read_json(path, limit=None) or {}
    merged.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))})
    write_text_atomic(path, _results_text(merged))


def write_results(run_dir: Path, split: str, metrics: dict[str, Any], *, combined: bool = True) -> None:
    """One split's final metrics: `<split>_results.json`, and (`combined`) merged into all_results.json."""
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
    write_text_atomic(Path(run_dir) / results_file(split), _results_text(scalars))
    if combined:
        merge_all_results(run_dir, scalars)


class TrainerLogWriter:
    """Appends one JSON line per logging step and flushes it at once, for the live monitor."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / TRAINER_LOG

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line."""
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()

    def truncate_after(self, step: int) -> None:
        """Drop lines past `step` (a run resumed from an earlier checkpoint re-logs them)."""
        records, _ = read_trainer_log(self.path.parent)
        kept = [r for r in records if _step_of(r) <= step]
        if len(kept) != len(records):
            write_text_atomic(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))


def _step_of(record: dict[str, Any]) -> float:
    try:
        return float(record.get("current_steps", 0))
    except (TypeError, ValueError):
        return 0.0


class _Tee:
    """Mirror a stream into running_log.txt when the CLI runs in a terminal (the studio redirects instead)."""

    def __init__(self, stream: Any, log_file: Any) -> None:
        self.stream, self.log_file = stream, log_file

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.log_file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log_file.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def attach_running_log(run_dir: Path) -> Any:
    """Tee stdout/stderr into running_log.txt; returns a function that undoes it."""
    if os.environ.get("STUDIO_RUNNING_LOG") == str((run_dir / RUNNING_LOG).resolve()):
        return lambda: None  # the studio's runner already sends our output there
    log_file = open(run_dir / RUNNING_LOG, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by restore
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(saved[0], log_file), _Tee(saved[1], log_file)
    handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    previous = [h.setStream(sys.stderr) for h in handlers]

    def restore() -> None:
        sys.stdout, sys.stderr = saved
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)
        log_file.close()

    return restore


class RunLock:
    """An exclusive lock on a run folder held for the whole run: one writer per folder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise a ConfigError saying another run is writing here."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError("run_locked", path=str(self.path.parent)) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on `path` (created if needed) for the `with` block; a no-op without fcntl."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def is_locked(run_dir: Path) -> bool:
    """Whether some process holds the run folder's lock."""
    import fcntl

    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


# The file each kind of checkpoint writes last: the Trainer's `_save_checkpoint` ends with trainer_state.json
# (checked in transformers 5.25), PPO's `save_checkpoint` with ppo_state.json. A folder without it, or with it cut
# short, was not completely written.
CHECKPOINT_LAST_FILES = ("trainer_state.json", "ppo_state.json")


def is_complete_checkpoint(folder: Path) -> bool:
    """Whether a `checkpoint-N` folder was completely written (its last file is there and whole)."""
    # No size limit: trainer_state.json carries the whole log history and grows with long runs.
    return any(_read_json(Path(folder) / name, limit=None) is not None for name in CHECKPOINT_LAST_FILES)


def list_checkpoints(run_dir: Path, *, complete_only: bool = True) -> list[Path]:
    """`checkpoint-N` folders in step order: the completely written ones (all of them for clean-up)."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    if complete_only:
        found = [p for p in found if is_complete_checkpoint(p)]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def remove_incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """Delete `checkpoint-N` folders a failed or killed save left half-written; returns what was removed.

    Only the holder of the folder's lock may call this: a checkpoint being saved right now is incomplete too.
    """
    removed = [p for p in list_checkpoints(run_dir, complete_only=False) if not is_complete_checkpoint(p)]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def has_results(run_dir: Path) -> bool:
    """Whether the folder holds another run's results (more than a fresh config)."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists() for name in RESULT_FILES) or bool(
        list_checkpoints(run_dir, complete_only=False))


def clear_results(run_dir: Path) -> None:
    """Remove a previous run's outputs (only when the user asked to overwrite)."""
    for child in Path(run_dir).iterdir():
        if child.name in (LOCK_FILE, CONFIG_FILE, RUNNING_LOG):
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def wait_for_state(run_dir: Path, states: tuple[str, ...] = FINAL_STATES,
                   timeout: float = 60.0) -> dict[str, Any]:
    """Poll status.json until it reaches one of `states` (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(run_dir, reconcile=False)
        if status.get("state") in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
