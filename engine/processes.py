"""Processes named in run folders: is a recorded pid still the process that wrote it, and what runs below it.

Torch-free and Linux-first (/proc); values come from files anyone can edit, so every function takes any value
and answers instead of raising.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

# Linux never hands out pids above 2**22 (pid_max's ceiling); anything larger, or not a plain int, is not a pid.
PID_MAX = 2**22


def valid_pid(value: Any) -> int | None:
    """`value` as a process id when it is a plain positive int in the kernel's range, else None."""
    if type(value) is not int or not 0 < value <= PID_MAX:  # bool is an int subclass: True is not pid 1
        return None
    return value


def process_start_time(pid: Any) -> str | None:
    """The kernel's start time of a process (to tell a reused pid from the original), None when gone."""
    pid = valid_pid(pid)
    if pid is None:
        return None
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
    except (OSError, OverflowError):
        return False
    return True


def process_descendants(pids: list[int]) -> list[int]:
    """Every process below `pids` (children, grandchildren, ...), parents first; gone or foreign ones are skipped."""
    found: list[int] = []
    for pid in pids:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except (psutil.Error, ValueError, OverflowError):
            continue
        found += [child.pid for child in children if child.pid not in found]
    return found


def is_process_alive(pid: Any, start_time: Any = None) -> bool:
    """Whether `pid` is still the process that wrote the status (zombies count as dead; a non-pid is dead)."""
    pid = valid_pid(pid)
    if pid is None:
        return False
    current = process_start_time(pid)
    if current is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
        if state == "Z":
            return False
    except (OSError, IndexError):
        pass
    if start_time is not None and not isinstance(start_time, str):
        return False  # a start time we did not write cannot vouch for this process
    return not start_time or not current or current == start_time
