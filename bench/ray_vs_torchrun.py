"""Ray Train DDP against torchrun DDP: tokens/s of the same training run with two local workers each.

What it measures: LoRA SFT of a demo-architecture model (built offline into a temporary folder) on
`alpaca_en_demo`, batch 2 per worker, cutoff 256, a fixed number of optimiser steps, fp32, two processes on this
machine either way, DDP over gloo on CPU:
- `torchrun`: `python -m engine train` with FORCE_TORCHRUN=1 and NPROC_PER_NODE=2 (what the studio starts for
  several devices);
- `ray`: the same command with USE_RAY=1 and ray_num_workers=2 (the driver starts a Ray head on 127.0.0.1 and Ray
  Train runs the same training body in two workers).
The number is the engine's own: the `throughput` of the last trainer_log.jsonl line (input tokens seen by all
ranks since the Trainer's on_train_begin, over the time since then), so start-up costs (Ray's head, model loading,
tokenization) stay out of it and both sides are counted by the same code. Variants alternate, each repeat in fresh
processes; the headline is each side's best repeat (shared machines swing with other load; medians and every run
are in the JSON). OMP_NUM_THREADS=1 per process on both sides, so two processes fit two cores.

Baseline: torchrun's tokens/s. Target: Ray at least 0.9x torchrun.

    .venv/bin/python bench/ray_vs_torchrun.py [--quick] [--repeats N] [--steps N] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, free_port, parser, print_table, python_executable, summarize, write_result

VARIANTS = ("torchrun", "ray")
TARGET = 0.9


def build_model(folder: Path, quick: bool) -> Path:
    """The demo architecture, a little larger than the default unless quick, built offline."""
    sizes = {} if quick else {"hidden_size": 256, "num_layers": 4, "intermediate_size": 1024}
    code = ("import sys; from engine.model.demo import build_demo_model; "
            f"print(build_demo_model(sys.argv[1], **{sizes!r}))")
    out = subprocess.run([python_executable(), "-c", code, str(folder)], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def run_variant(variant: str, model: Path, work: Path, steps: int, index: int) -> dict[str, Any]:
    """One training run in fresh processes; returns its tokens/s and wall time."""
    out = work / f"{variant}_{index}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "STUDIO_TOKENIZED_CACHE": str(work / "cache")}
    overrides = [f"model_name_or_path={model}", f"output_dir={out}", "dataset=alpaca_en_demo", "finetuning_type=lora",
                 "lora_rank=8", "per_device_train_batch_size=2", "cutoff_len=256", f"max_steps={steps}",
                 "logging_steps=1", "save_steps=100000", "learning_rate=1e-4", "seed=1", "report_to=none"]
    if variant == "torchrun":
        env.update({"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": str(free_port())})
    else:
        env["USE_RAY"] = "1"
        overrides += ["ray_num_workers=2", f"ray_storage_path={work / 'ray'}"]
    started = time.monotonic()
    done = subprocess.run([python_executable(), "-m", "engine", "train", *overrides], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines() if line.strip()]
    last = [r for r in records if "throughput" in r][-1]
    return {"tokens_per_s": last["throughput"], "total_tokens": last["total_tokens"], "steps": last["current_steps"],
            "final_loss": records[-1].get("loss"), "wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="runs of each variant, alternating (default 2)")
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps per run (default 40)")
    args = ap.parse_args(argv)
    repeats, steps = (1, 4) if args.quick else (args.repeats, args.steps)
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="ray-bench-") as tmp:
        work = Path(tmp)
        model = build_model(work / "model", args.quick)
        for index in range(repeats):
            order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                result = run_variant(variant, model, work, steps, index)
                print(f"{variant} #{index}: {result['tokens_per_s']:.0f} tok/s ({result['wall_s']} s wall)", flush=True)
                runs[variant].append(result)
    best = {v: max(r["tokens_per_s"] for r in runs[v]) for v in VARIANTS}
    ratio = best["ray"] / best["torchrun"] if best["torchrun"] else 0.0
    print_table(f"Ray Train vs torchrun, 2 workers, {steps} steps (best of {repeats})",
                ["variant", "tok/s (best)", "tok/s (median)", "wall s (median)"],
                [[v, best[v], summarize(r["tokens_per_s"] for r in runs[v])["median"],
                  summarize(r["wall_s"] for r in runs[v])["median"]] for v in VARIANTS])
    print(f"ray / torchrun tokens/s: {ratio:.3f} (target >= {TARGET})")
    write_result("ray_vs_torchrun", {
        "quick": args.quick, "settings": {"steps": steps, "repeats": repeats, "workers": 2, "batch_per_worker": 2,
                                          "cutoff_len": 256, "dataset": "alpaca_en_demo"},
        "baseline": "torchrun DDP, 2 processes", "target": f"ray tokens/s >= {TARGET}x torchrun",
        "results": {"runs": runs, "best_tokens_per_s": best, "ratio": round(ratio, 4),
                    "meets_target": ratio >= TARGET},
    }, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
