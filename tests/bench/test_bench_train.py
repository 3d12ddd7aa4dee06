"""Smoke tests of bench/train_throughput.py and bench/gpu_train.py: they run and write sane JSON."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"baseline", "ours-default", "ours-best"}


def run_bench(script: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, f"bench/{script}", *args, "--results-dir", str(results)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)


def only_result(results: Path, name: str) -> dict:
    files = list(results.glob(f"*/{name}.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text(encoding="utf-8"))


@pytest.mark.slow
def test_train_throughput_quick_run_writes_sane_json(tmp_path: Path) -> None:
    done = run_bench("train_throughput.py", tmp_path, "--quick")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "real tok/s" in done.stdout and "ours-best" in done.stdout
    result = only_result(tmp_path, "train_throughput")
    assert result["benchmark"] == "train_throughput" and result["quick"] is True
    assert result["settings"]["steps"] == 5 and "baseline" in result and "target" in result
    demo = result["results"]["demo"]
    assert set(demo["variants"]) == VARIANTS and demo["model"]["parameters"] > 1_000_000
    for name, variant in demo["variants"].items():
        assert variant["steps"] == 5, name
        assert variant["tokens_per_s"] > 0 and variant["samples_per_s"] > 0 and variant["peak_rss_mib"] > 0, name
        assert math.isfinite(variant["final_loss"]) and 0 < variant["final_loss"] < 20, name
        assert 0 <= variant["padding_share"] < 1, name
    variants = demo["variants"]
    # Same data, batch 4, 5 steps: without packing both see 20 examples; packing puts more in each step.
    assert variants["baseline"]["samples"] == variants["ours-default"]["samples"] == 20
    assert variants["ours-best"]["samples"] > 20
    assert variants["ours-default"]["padding_share"] == 0  # padding-free by default
    assert set(demo["ratios"]) == {"ours-default", "ours-best"} and isinstance(result["target_met"], bool)


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU is present: the benchmark would run")
def test_gpu_train_skips_without_a_gpu(tmp_path: Path) -> None:
    done = run_bench("gpu_train.py", tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "skipped:" in done.stdout
    result = only_result(tmp_path, "gpu_train")
    assert result["benchmark"] == "gpu_train" and result["skipped"] is True and "GPU" in result["reason"]
