"""The run folder, the contract between the engine and the studio: status, logs, lock, and safe reuse.

Torch-free: the studio reads runs through this module while the engine writes them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

STATUS_FILE = "status.json"
TRAINER_LOG = "trainer_log.jsonl"
RUNNING_LOG = "running_log.txt"
CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"
RESULT_FILES = ("trainer_log.jsonl", "all_results.json", "train_results.json", "model.safetensors",
                "adapter_model.safetensors", "model.safetensors.index.json", "loss.png")
STATES = ("running", "finished", "failed", "aborted")


def now_iso() -> str:
    """The current time as an ISO-8601 string with the time zone."""
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    # Process and thread in the name: two threads of one process (the studio) may write the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (to tell a reused pid from the original), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None if not _pid_alive(pid) else ""
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_descendants(pids: list[int]) -> list[int]:
    """Every process below `pids` (children, grandchildren, ...), found through /proc (Linux; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def is_process_alive(pid: int | None, start_time: str | None = None) -> bool:
    """Whether `pid` is still the process that wrote the status (zombies count as dead)."""
    if not pid:
        return False
    current = process_start_time(pid)
    if current is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state == "Z":
            return False
    except OSError:
        pass
    return not start_time or not current or current == start_time


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


def mark_running(run_dir: Path, pid: int | None = None) -> dict[str, Any]:
    """Record that this process (or `pid`) is running the folder."""
    pid = pid or os.getpid()
    path = Path(run_dir) / STATUS_FILE
    if path.exists():  # a resumed run: a fresh start time, no stale end
        status = _read_json(path) or {}
        status.pop("started_at", None)
        status.pop("ended_at", None)
        write_json_atomic(path, status)
    return write_status(run_dir, "running", pid=pid, pid_start_time=process_start_time(pid))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
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


def read_status(run_dir: Path, *, reconcile: bool = True) -> dict[str, Any]:
    """The run's status; a `running` run whose process is gone is reported (and, with reconcile, saved) as failed."""
    run_dir = Path(run_dir)
    status = _read_json(run_dir / STATUS_FILE)
    if status is None:
        has_results = any((run_dir / name).exists() for name in RESULT_FILES)
        return {"state": "unknown" if has_results else "new"}
    if status.get("state") == "running" and not is_process_alive(status.get("pid"), status.get("pid_start_time")):
        tail = tail_text(run_dir / RUNNING_LOG, max_lines=5)
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
        status.update(state="failed", exit_code=status.get("exit_code"), ended_at=now_iso(),
                      error=f"The training process ended without a final status. Last log line: {last or '(empty)'}")
        if reconcile:
            write_json_atomic(run_dir / STATUS_FILE, status)
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
        kept = [r for r in records if int(r.get("current_steps", 0)) <= step]
        if len(kept) != len(records):
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")
            tmp.replace(self.path)


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


def list_checkpoints(run_dir: Path) -> list[Path]:
    """`checkpoint-N` folders in step order."""
    found = [p for p in Path(run_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def has_results(run_dir: Path) -> bool:
    """Whether the folder holds another run's results (more than a fresh config)."""
    run_dir = Path(run_dir)
    return any((run_dir / name).exists() for name in RESULT_FILES) or bool(list_checkpoints(run_dir))


def clear_results(run_dir: Path) -> None:
    """Remove a previous run's outputs (only when the user asked to overwrite)."""
    for child in Path(run_dir).iterdir():
        if child.name in (LOCK_FILE, CONFIG_FILE, RUNNING_LOG):
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def wait_for_state(run_dir: Path, states: tuple[str, ...] = ("finished", "failed", "aborted"),
                   timeout: float = 60.0) -> dict[str, Any]:
    """Poll status.json until it reaches one of `states` (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_status(run_dir, reconcile=False)
        if status.get("state") in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)
