"""Studio cold start: seconds from process start to the first HTTP 200 on `/` for `python -m studio launch`.

Baseline (the floor): a bare Gradio Blocks app with one Textbox, launched the same way (the same interpreter,
a fresh process, 127.0.0.1, a free port). Nothing the studio can do starts faster than Gradio itself, so what
is measured is what the studio adds on top: its imports, building its tabs and its own launch work.
After one untimed start of each (bytecode written, files cached, as for any start after the first), runs
alternate (studio, floor, studio, floor, ...; 7 pairs, `--quick` 1 and no warm-up) so that other load on the
machine hits both alike. Reported: the median of each, their difference and ratio; the CPU seconds each process
used until it answered (less swayed by other load than the wall clock); and the resident memory of each
process (with its children) once it answers.

Target: the studio's median within 0.5 s of the floor's median.

    .venv/bin/python bench/cold_start.py [--pairs N] [--quick] [--results-dir DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    free_port,
    machine,
    parser,
    print_table,
    stop_process_group,
    summarize,
    tree_cpu_seconds,
    tree_rss_mib,
    write_result,
)

TARGET_SECONDS = 0.5
ANSWER_TIMEOUT = 120.0
POLL_SECONDS = 0.02

FLOOR_APP = '''"""The floor of the cold-start benchmark: the smallest Gradio app, launched like the studio."""
import sys

import gradio as gr

with gr.Blocks() as demo:
    gr.Textbox()
demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
'''


def server_env(home: Path) -> dict[str, str]:
    """The environment both servers start with: offline, no analytics, a private STUDIO_HOME.

    Bytecode caching is left on, as for an installed package: with PYTHONDONTWRITEBYTECODE every module
    without a .pyc would be compiled again at every start.
    """
    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "GRADIO_ANALYTICS_ENABLED": "False",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def studio_command(port: int) -> list[str]:
    """`python -m studio launch` on a given port."""
    return [sys.executable, "-m", "studio", "launch", "--port", str(port)]


def floor_command(script: Path, port: int) -> list[str]:
    """The bare Gradio app on a given port."""
    return [sys.executable, str(script), str(port)]


def answers(url: str) -> int | None:
    """The HTTP status of GET `url`, or None while nothing listens."""
    import httpx

    try:
        return httpx.get(url, timeout=5.0).status_code
    except httpx.HTTPError:
        return None


def start_server(command: list[str], home: Path, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """Start a server in its own process group; returns it and the seconds until `/` answered 200."""
    url = f"http://127.0.0.1:{port}/"
    with open(log, "w", encoding="utf-8") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=home, env=server_env(home), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    while time.perf_counter() - started < ANSWER_TIMEOUT:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode} before answering; "
                               f"its output:\n{log.read_text(encoding='utf-8')[-3000:]}")
        if answers(url) == 200:
            return proc, time.perf_counter() - started
        time.sleep(POLL_SECONDS)
    stop_process_group(proc)
    raise RuntimeError(f"{' '.join(command)} did not answer 200 on {url} within {ANSWER_TIMEOUT:.0f} s; "
                       f"see {log}")


def measure(kind: str, command: list[str], home: Path, port: int, log: Path) -> dict[str, Any]:
    """One cold start: seconds to the first 200, and the CPU seconds used and resident memory (MiB) by then
    (the process with its children)."""
    proc, seconds = start_server(command, home, port, log)
    try:
        cpu, rss = tree_cpu_seconds(proc.pid), tree_rss_mib(proc.pid)
    finally:
        stop_process_group(proc)
    return {"kind": kind, "seconds": seconds, "cpu_s": cpu, "rss_mib": rss}


def run_pairs(pairs: int, work: Path, warm_up: bool = True) -> list[dict[str, Any]]:
    """Alternate studio and floor starts, each in a fresh STUDIO_HOME and on a fresh port; with `warm_up`, one
    untimed start of each comes first (bytecode written, files in the page cache, as on any later start)."""
    floor_script = work / "floor_app.py"
    floor_script.write_text(FLOOR_APP, encoding="utf-8")
    runs = []
    for index in range(-1 if warm_up else 0, pairs):
        for kind in ("studio", "floor"):
            home = work / f"{kind}-{index + 1}"
            (home / "saves").mkdir(parents=True)
            port = free_port()
            command = studio_command(port) if kind == "studio" else floor_command(floor_script, port)
            run = measure(kind, command, home, port, home / "server.log")
            if index < 0:
                continue
            print(f"  {kind:6s} #{index + 1}: {run['seconds']:.2f} s ({run['cpu_s']:.2f} CPU s), "
                  f"{run['rss_mib']:.0f} MiB", flush=True)
            runs.append(run)
    return runs


def report(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians, difference, ratio and whether the target was met."""

    def of(kind: str, key: str) -> dict[str, float]:
        return summarize(r[key] for r in runs if r["kind"] == kind)

    studio, floor = of("studio", "seconds"), of("floor", "seconds")
    studio_cpu, floor_cpu = of("studio", "cpu_s"), of("floor", "cpu_s")
    studio_rss, floor_rss = of("studio", "rss_mib"), of("floor", "rss_mib")
    difference = studio["median"] - floor["median"]
    payload = {
        "unit": "seconds from process start to the first HTTP 200 on /",
        "baseline": {"name": "bare Gradio Blocks app with one Textbox", "seconds": floor, "cpu_s": floor_cpu,
                     "rss_mib": floor_rss},
        "ours": {"name": "python -m studio launch", "seconds": studio, "cpu_s": studio_cpu, "rss_mib": studio_rss},
        "difference_s": difference,
        "ratio": studio["median"] / floor["median"],
        "cpu_difference_s": studio_cpu["median"] - floor_cpu["median"],
        "target": f"studio median within {TARGET_SECONDS} s of the floor's median",
        "target_met": difference <= TARGET_SECONDS,
        "runs": runs,
    }
    headers = ["server", "median s", "min s", "max s", "CPU s", "RSS MiB"]
    print_table("Cold start (median of interleaved runs)", headers, [
        ["floor (bare Gradio)", floor["median"], floor["min"], floor["max"], floor_cpu["median"], floor_rss["median"]],
        ["studio launch", studio["median"], studio["min"], studio["max"], studio_cpu["median"], studio_rss["median"]],
    ])
    print(f"difference {difference:+.2f} s, ratio {payload['ratio']:.2f}x; target (≤ +{TARGET_SECONDS} s) "
          f"{'met' if payload['target_met'] else 'MISSED'}", flush=True)
    return payload


def main() -> int:
    """Run the interleaved pairs and write bench/results/<machine>/cold_start.json."""
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=None, help="studio/floor pairs (default 7, --quick 1)")
    args = ap.parse_args()
    pairs = args.pairs or (1 if args.quick else 7)
    print(f"cold start: {pairs} interleaved studio/floor pairs on {machine()['cpu']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-cold-start-") as tmp:
        payload = report(run_pairs(pairs, Path(tmp), warm_up=not args.quick))
    write_result("cold_start", {"pairs": pairs, "quick": args.quick, **payload}, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
