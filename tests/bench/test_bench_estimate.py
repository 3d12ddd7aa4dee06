"""Smoke test of bench/estimate_error.py: a quick run writes sane JSON with the error of each config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_estimate_error_quick_run_writes_sane_json(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "bench/estimate_error.py", "--quick", "--results-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "estimate vs measured" in done.stdout
    (path,) = tmp_path.glob("*/estimate_error.json")
    result = json.loads(path.read_text(encoding="utf-8"))
    assert result["benchmark"] == "estimate_error" and result["quick"] is True and result["tolerance"] == 0.30
    assert set(result["results"]) == {"tiny · lora b4 c256", "tiny · full b2 c128"}
    for name, row in result["results"].items():
        assert row["measured_bytes"] > 0 and row["estimate"]["total"] > 0, name
        assert row["relative_error"] == pytest.approx((row["estimate"]["total"] - row["measured_bytes"])
                                                      / row["measured_bytes"], abs=1e-3), name
        assert row["probe"]["steps"] == 2 and row["probe"]["tokens_per_second"] > 0, name
    assert isinstance(result["target_met"], bool) and result["max_abs_error"] >= 0
