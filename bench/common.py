"""What every benchmark shares: the machine it ran on, summaries of repeated timings, a printed table and the
JSON result file (`bench/results/<machine kind>/<benchmark>.json`, the latest run per machine kind).

Benchmarks compare against a baseline measured in the same run on the same machine: absolute times on shared
machines swing with other load, ratios hold. Run them from the repository root with the project's virtual
environment, e.g. `.venv/bin/python bench/train_throughput.py`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: where results go and the tiny smoke-test sizes."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                    help="folder for <machine kind>/<benchmark>.json (default: bench/results)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes that only check the script still works (numbers mean nothing)")
    return ap


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def gpu_names() -> list[str]:
    """GPU names from nvidia-smi (empty when there is none); torch is not imported for this."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cores": cores, "memory_gib": _memory_gib(), "gpus": gpu_names(),
            "python": platform.python_version(), "platform": platform.platform()}


def machine_kind(info: dict[str, Any] | None = None) -> str:
    """A folder name for results: `cpu-2c`, or `gpu-nvidia-h100-80gb-hbm3-x1` when GPUs are present."""
    info = info or machine()
    if info["gpus"]:
        name = re.sub(r"[^a-z0-9]+", "-", info["gpus"][0].lower()).strip("-")
        return f"gpu-{name}-x{len(info['gpus'])}"
    return f"cpu-{info['cores']}c"


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Median, min, max and count of repeated measurements."""
    values = list(values)
    if not values:
        return {"n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def peak_rss_mib(children: bool = False) -> float:
    """Peak resident memory of this process (or of its finished children) in MiB (Linux reports KiB)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024


def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table on stdout (and returned)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    lines = [title, "  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_result(name: str, payload: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write `<results_dir>/<machine kind>/<name>.json` with the date and the machine, and return its path."""
    info = machine()
    record = {"benchmark": name, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine_kind": machine_kind(info), "machine": info, "command": " ".join(sys.argv), **payload}
    path = Path(results_dir) / machine_kind(info) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {path}", flush=True)
    return path


def python_executable() -> str:
    """The interpreter running the benchmark (the project's virtual environment)."""
    return sys.executable


# ---------------------------------------------------------------- server processes (studio, API server)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel picks it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (Linux)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from engine.runfolder import process_descendants

    return [pid, *process_descendants([pid])]


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss_mib(pid: int, key: str = "VmRSS") -> float:
    """Resident memory of a process and its descendants in MiB (`key` VmHWM: the sum of their peaks)."""
    return sum(_status_kib(p, key) for p in process_tree(pid)) / 1024


def stop_process_group(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group a child leads (started with start_new_session=True), SIGKILL after `timeout`."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its descendants have used so far: less swayed by other load
    on the machine than wall-clock time."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[-1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            continue
    return total / ticks
