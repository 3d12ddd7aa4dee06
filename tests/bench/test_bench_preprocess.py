"""Smoke test of bench/preprocess.py: the quick run finishes and writes a sane result file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {"baseline-first", "baseline-rerun", "ours-first", "ours-cached", "ours-first-workers2"}


@pytest.mark.slow
def test_quick_run_writes_sane_json(tmp_path: Path) -> None:
    env = {**os.environ, "STUDIO_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "bench/preprocess.py", "--quick", "--results-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "ours-cached" in done.stdout and "baseline-first" in done.stdout
    files = list(tmp_path.glob("*/preprocess.json"))
    assert len(files) == 1
    result = json.loads(files[0].read_text(encoding="utf-8"))
    assert result["benchmark"] == "preprocess" and result["quick"] is True and result["rows"] == 500
    assert set(result["variants"]) == VARIANTS
    for name, variant in result["variants"].items():
        assert variant["seconds"] > 0 and variant["rows_per_s"] > 0 and variant["peak_rss_mib"] > 0, name
        assert variant["sequences"] == 500, name
    ours = {variant["tokens"] for name, variant in result["variants"].items() if name.startswith("ours")}
    assert len(ours) == 1  # first run, cached re-run and workers give the same rows
    assert result["variants"]["baseline-first"]["tokens"] == result["variants"]["baseline-rerun"]["tokens"]
    assert set(result["ratios"]) >= {"ours_first_vs_baseline_first", "ours_cached_vs_ours_first",
                                     "ours_cached_vs_baseline_rerun"}
    assert isinstance(result["target_met"], bool) and "baseline" in result and "target" in result
