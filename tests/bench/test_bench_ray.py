"""Smoke test of bench/ray_vs_torchrun.py: it runs both sides and writes sane JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _has_ray() -> bool:
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _has_ray(), reason="ray is not installed: pip install -e \".[ray]\"")
def test_ray_vs_torchrun_quick_run_writes_sane_json(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "bench/ray_vs_torchrun.py", "--quick", "--results-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ray / torchrun tokens/s" in done.stdout
    files = list(tmp_path.glob("*/ray_vs_torchrun.json"))
    assert len(files) == 1, files
    result = json.loads(files[0].read_text(encoding="utf-8"))
    assert result["benchmark"] == "ray_vs_torchrun" and result["quick"] is True
    runs = result["results"]["runs"]
    assert set(runs) == {"torchrun", "ray"}
    for variant in runs.values():
        assert len(variant) == 1 and variant[0]["tokens_per_s"] > 0 and variant[0]["steps"] == 4
    assert result["results"]["ratio"] > 0
