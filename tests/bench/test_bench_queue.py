"""Smoke test of the queue benchmark: a quick run finishes and writes a result with the expected keys and positive
numbers. The numbers themselves are not judged (shared machines swing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.test_bench_studio import run_bench

pytestmark = pytest.mark.slow


def test_queue_overhead(tmp_path: Path) -> None:
    result, stdout = run_bench("queue_overhead.py", tmp_path)
    assert "Queue overhead" in stdout and "direct launch" in stdout
    assert result["repeats"] == 1 and [run["kind"] for run in result["runs"]] == ["direct", "queued"]
    for side in ("baseline", "ours"):
        assert result[side]["n"] == 1 and result[side]["median"] > 0
    assert result["overhead_s"] == pytest.approx(result["ours"]["median"] - result["baseline"]["median"])
