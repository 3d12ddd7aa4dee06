"""Memory estimate versus measured peak: `python -m engine estimate --probe` on the CPU, for a few configs.

What it measures: for each config, the estimate's total (weights + gradients + optimizer + activations + the CPU
runtime share) and the probe's measurement in the same process: the growth of the resident memory (RSS) from just
before the model loads to the peak of a few training steps, sampled every 5 ms and checked against getrusage's
maximum. Each config runs in a fresh subprocess, so nothing is shared.

Models: demo-architecture models built offline (random weights, the demo tokenizer recipe): the test suite's tiny
model (hidden 64, 2 layers, 0.14 M parameters), the demo model (hidden 128, 4 layers, 1.3 M parameters) and a larger one (hidden 512, 8 layers, 27 M parameters) whose weights
and optimizer states dominate. Data: `alpaca_en_demo` packed into full cutoff_len rows (packing: true), so every
sequence has the length the estimate assumes.

Baseline: the measured RSS growth. Reported per config: the relative error (estimate − measured) / measured.
Target: every error within ±30 % (the tolerance the unit test also states).

    .venv/bin/python bench/estimate_error.py [--quick] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from common import REPO_ROOT, parser, print_table, python_executable, write_result

TOLERANCE = 0.30
MODELS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128,
             "vocab_size": 1024},  # the test suite's tiny model (tests/conftest.py)
    "demo": {},
    "demo-h512-l8": {"hidden_size": 512, "num_layers": 8, "num_heads": 8, "num_kv_heads": 4,
                     "intermediate_size": 1536},
}
BASE: dict[str, Any] = {"stage": "sft", "dataset": "alpaca_en_demo", "packing": True, "learning_rate": 1e-4,
                        "num_train_epochs": 1.0, "logging_steps": 1, "report_to": "none", "use_cpu": True}
CONFIGS: dict[str, dict[str, Any]] = {
    "full b4 c256": {"finetuning_type": "full", "per_device_train_batch_size": 4, "cutoff_len": 256},
    "lora b4 c256": {"finetuning_type": "lora", "per_device_train_batch_size": 4, "cutoff_len": 256},
    "lora b8 c512": {"finetuning_type": "lora", "per_device_train_batch_size": 8, "cutoff_len": 512},
    "full b2 c128": {"finetuning_type": "full", "per_device_train_batch_size": 2, "cutoff_len": 128},
    "freeze b4 c256": {"finetuning_type": "freeze", "per_device_train_batch_size": 4, "cutoff_len": 256},
}
QUICK = {"tiny": ["lora b4 c256", "full b2 c128"]}


def build_models(folder: Path, names: list[str]) -> dict[str, Path]:
    """Build each model once (seconds) into `folder`."""
    sys.path.insert(0, str(REPO_ROOT))
    from engine.model.demo import build_demo_model

    return {name: build_demo_model(folder / name, **MODELS[name]) for name in names}


def measure(model_dir: Path, settings: dict[str, Any], steps: int) -> dict[str, Any]:
    """Run the estimate with --probe in a fresh process and return its JSON answer."""
    config = {**BASE, **settings, "model_name_or_path": str(model_dir), "dataset_dir": str(REPO_ROOT / "data")}
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([python_executable(), "-m", "engine", "estimate", "-", "--probe", "--cpu",
                           "--steps", str(steps)], input=yaml.safe_dump(config), capture_output=True, text=True,
                          cwd=REPO_ROOT, env=env, timeout=900)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"estimate --probe failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> int:
    args = parser(__doc__.splitlines()[0]).parse_args()
    plan = QUICK if args.quick else {name: list(CONFIGS) for name in MODELS}
    steps = 2 if args.quick else 4
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="estimate-bench-") as tmp:
        models = build_models(Path(tmp), list(plan))
        for model, configs in plan.items():
            for name in configs:
                answer = measure(models[model], CONFIGS[name], steps)
                estimate, probe = answer["estimate"], answer["probe"]
                measured = probe["rss_growth_bytes"]
                error = (estimate["total"] - measured) / measured
                results[f"{model} · {name}"] = {"model": model, "settings": CONFIGS[name], "estimate": estimate,
                                                "probe": probe, "measured_bytes": measured,
                                                "relative_error": round(error, 4)}
                rows.append([model, name, estimate["params"], estimate["trainable_params"],
                             estimate["total"] / 2**20, measured / 2**20, f"{error:+.0%}"])
    print_table("estimate vs measured RSS growth (MiB)", ["model", "config", "params", "trained", "estimate",
                                                          "measured", "error"], rows)
    errors = [abs(r["relative_error"]) for r in results.values()]
    write_result("estimate_error", {"quick": args.quick, "steps": steps, "tolerance": TOLERANCE,
                                    "baseline": "RSS growth from before the model loads to the peak of the steps",
                                    "results": results, "max_abs_error": max(errors),
                                    "target_met": max(errors) <= TOLERANCE}, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
