"""Smoke tests of the studio-side benchmarks (cold start, monitor latency, chat latency): each quick run finishes
and writes a result file with the expected keys and positive numbers. The numbers themselves are not judged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.slow


def run_bench(script: str, results: Path, *extra: str) -> tuple[dict[str, Any], str]:
    """Run `bench/<script> --quick --results-dir <results>`; returns its JSON result and its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, f"bench/{script}", "--quick", "--results-dir", str(results), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = list(results.glob(f"*/{Path(script).stem}.json"))
    assert len(files) == 1, f"expected one result file, found {files}"
    result = json.loads(files[0].read_text(encoding="utf-8"))
    assert result["benchmark"] == Path(script).stem and result["quick"] is True
    assert {"baseline", "ours", "ratio", "target", "target_met", "machine", "date"} <= set(result)
    assert isinstance(result["target_met"], bool) and result["ratio"] > 0
    return result, done.stdout


def test_cold_start(tmp_path: Path) -> None:
    result, stdout = run_bench("cold_start.py", tmp_path)
    assert "studio launch" in stdout and "floor (bare Gradio)" in stdout
    for side in ("baseline", "ours"):
        assert result[side]["seconds"]["n"] == 1 and result[side]["seconds"]["median"] > 0
        assert result[side]["cpu_s"]["median"] > 0 and result[side]["rss_mib"]["median"] > 50  # a Python + Gradio
    kinds = [run["kind"] for run in result["runs"]]
    assert kinds == ["studio", "floor"]
    assert result["difference_s"] == pytest.approx(result["ours"]["seconds"]["median"]
                                                   - result["baseline"]["seconds"]["median"])


def check_monitor(result: dict[str, Any], browser: bool) -> None:
    assert result["browser"] is browser and result["appends"] == 3 and result["timer_floor_s"] > 0
    assert [scenario["history_steps"] for scenario in result["scenarios"]] == [0, 200]
    for scenario in result["scenarios"]:
        measured = [scenario["ours"], scenario["baseline"]] if browser else [scenario["ours"]]
        for side in measured:  # the in-process baseline is measured too when there is a browser
            assert len(side["latencies_s"]) == 3 and all(0 <= value < 30 for value in side["latencies_s"])
            assert side["median"] > 0 and side["max"] >= side["p90"] > 0
        assert scenario["ratio"] == pytest.approx(scenario["ours"]["median"] / scenario["baseline"]["median"])


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (the in-process test covers the rest)")
def test_monitor_latency_in_the_browser(tmp_path: Path) -> None:
    result, stdout = run_bench("monitor_latency.py", tmp_path)
    assert "browser (studio + Chromium)" in stdout
    check_monitor(result, browser=True)


def test_monitor_latency_in_process(tmp_path: Path) -> None:
    result, stdout = run_bench("monitor_latency.py", tmp_path, "--in-process")
    assert "in-process poll" in result["path"]
    check_monitor(result, browser=False)


def test_chat_latency(tmp_path: Path) -> None:
    result, stdout = run_bench("chat_latency.py", tmp_path)
    assert "API server (HTTP)" in stdout and "in-process generate" in stdout
    assert result["max_tokens"] == 16 and result["prompts"] == 1 and result["repeats"] == 1
    for side in ("baseline", "ours"):
        assert result[side]["ttft_s"]["median"] > 0 and result[side]["tokens_per_s"]["median"] > 0
        assert 0 < result[side]["tokens"]["median"] <= 16 and result[side]["peak_rss_mib"] > 50
    assert [run["kind"] for run in result["runs"]] == ["server", "in-process"]
    assert result["same_token_counts"] is True  # greedy, same stops: both sides generate the same reply
