"""Queue overhead: seconds from a running job finishing to the next queued job's first logged step.

The real path: a fresh STUDIO_HOME, the tiny demo model, LoRA SFT runs started with the studio's own `start_run`.
Job A runs; job B is started while A runs, so it queues; the time is taken from the moment A's status.json says
`finished` to the moment B's trainer_log.jsonl holds its first step. Nobody calls dispatch: the studio that launched
A starts B when A's process ends (its reaping thread), as it does with no page open.

Baseline, measured in the same run: the same job B launched directly (`studio.queue.launch`, what a Start on a free
machine ends in, after its checks), timed from the launch to its first logged step. Both include the engine's start
(imports, model, data); the difference is what the queue adds (noticing the end, dispatch, re-validation).
Repeats are interleaved (direct, queued, direct, queued, ...).

Target: the queued path's median within 1 s of the direct path's.

    .venv/bin/python bench/queue_overhead.py [--repeats N] [--quick] [--results-dir DIR]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, parser, print_table, summarize, write_result

sys.path.insert(0, str(REPO_ROOT))

TARGET_S = 1.0
POLL_S = 0.01


def tiny_config(model_dir: Path, steps: int) -> dict[str, Any]:
    """A LoRA SFT run on the tiny model that logs every step."""
    return {"model_name_or_path": str(model_dir), "template": "chatml", "stage": "sft", "do_train": True,
            "dataset": "identity", "finetuning_type": "lora", "lora_rank": 4, "per_device_train_batch_size": 2,
            "logging_steps": 1, "save_steps": 100000, "learning_rate": 1e-3, "cutoff_len": 96, "seed": 3,
            "max_steps": steps, "report_to": "none"}


def wait_until(check: Any, timeout: float = 300.0) -> float:
    """Poll `check()` every POLL_S seconds; the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting")
        time.sleep(POLL_S)
    return time.monotonic()


def first_step(run_dir: Path) -> bool:
    from engine.runfolder import read_trainer_log

    return any("current_steps" in record for record in read_trainer_log(run_dir)[0])


def state(run_dir: Path) -> str:
    from engine.runfolder import read_status

    return read_status(run_dir, reconcile=False).get("state", "")


def direct(model_dir: Path, run_dir: Path, steps: int) -> float:
    """Launch job B on a free machine the way the queue does after its checks; seconds to its first step."""
    from engine.config import config_from_dict
    from studio import queue
    from studio.workspace import home

    config = {**tiny_config(model_dir, steps), "output_dir": str(run_dir)}
    cfg = config_from_dict(config, source="bench")
    start = time.monotonic()
    queue.launch(cfg, run_dir, "train", "en", home(), {})
    shown = wait_until(lambda: first_step(run_dir))
    wait_until(lambda: state(run_dir) in ("finished", "failed", "aborted"))
    return shown - start


def queued(model_dir: Path, first: Path, second: Path, steps: int) -> float:
    """Start A, queue B behind it; seconds from A's `finished` to B's first step."""
    from studio.runner import start_run

    assert start_run(tiny_config(model_dir, steps * 3), first)["state"] == "running"
    answer = start_run(tiny_config(model_dir, steps), second)
    assert answer["state"] == "queued", answer
    finished = wait_until(lambda: state(first) in ("finished", "failed", "aborted"))
    assert state(first) == "finished", (first / "running_log.txt").read_text()[-2000:]
    shown = wait_until(lambda: first_step(second))
    wait_until(lambda: state(second) in ("finished", "failed", "aborted"))
    return shown - finished


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=None, help="pairs of direct and queued starts (default 5)")
    args = ap.parse_args()
    repeats = args.repeats or (1 if args.quick else 5)
    steps = 2 if args.quick else 5
    home = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    (home / "saves").mkdir()
    os.environ.update({"STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       "TOKENIZERS_PARALLELISM": "false"})
    os.environ.pop("STUDIO_MAX_CPU_JOBS", None)
    os.chdir(home)
    from engine.model.demo import build_demo_model

    model_dir = build_demo_model(home / "models" / "tiny", hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                                 intermediate_size=128, vocab_size=1024)
    saves = home / "saves" / "tiny" / "lora"
    runs: list[dict[str, Any]] = []
    for i in range(repeats):
        runs.append({"kind": "direct", "seconds": direct(model_dir, saves / f"direct-{i}", steps)})
        runs.append({"kind": "queued", "seconds": queued(model_dir, saves / f"first-{i}", saves / f"second-{i}", steps)})
    base = summarize(r["seconds"] for r in runs if r["kind"] == "direct")
    ours = summarize(r["seconds"] for r in runs if r["kind"] == "queued")
    overhead = ours["median"] - base["median"]
    payload = {
        "unit": "seconds to the job's first logged step",
        "quick": args.quick, "repeats": repeats, "steps": steps,
        "baseline": {"name": "direct launch (free machine, after the checks), from launch", **base},
        "ours": {"name": "queued behind a running job, from that job's finish", **ours},
        "ratio": ours["median"] / base["median"],
        "overhead_s": overhead,
        "per_pair_overhead_s": [q["seconds"] - d["seconds"] for d, q in zip(runs[::2], runs[1::2], strict=True)],
        "target": f"queued median within {TARGET_S} s of the direct median",
        "target_met": overhead <= TARGET_S,
        "runs": runs,
    }
    print_table("Queue overhead: finish of the job ahead -> first step of the next (baseline: direct launch)",
                ["path", "median s", "min s", "max s", "n"],
                [["direct launch", base["median"], base["min"], base["max"], base["n"]],
                 ["queued", ours["median"], ours["min"], ours["max"], ours["n"]]])
    print(f"overhead {overhead:+.3f} s (pairs: {', '.join(f'{x:+.2f}' for x in payload['per_pair_overhead_s'])}); "
          f"median pair {statistics.median(payload['per_pair_overhead_s']):+.3f} s; "
          f"target (≤ {TARGET_S} s) {'met' if payload['target_met'] else 'MISSED'}", flush=True)
    write_result("queue_overhead", payload, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
