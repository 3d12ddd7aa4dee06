"""*Look at the data*, computed in a child process: `python -m studio.data_preview` reads the dataset, renders one
row as the model sees it and counts token lengths, then answers with one JSON line.

A dataset can be far larger than its file (a compressed Parquet of a million rows is a few kilobytes), and reading
it is the user's choice, so the studio's own process never does it: the child runs under the same memory cap and
timeout as the pre-launch checks, and a failure there costs one message, not the studio.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from engine.errors import StudioError, error_from_json, error_to_json
from engine.preflight import cap_memory
from studio.supervisor import run_json_child

PREVIEW_TIMEOUT_S = 120.0
PAGE_SIZE = 5


@dataclass
class Preview:
    """What the preview shows: a page of raw rows, one row rendered, length statistics (or why they failed)."""

    rows: list[dict]
    total: int
    rendered: str = ""
    stats: dict[str, Any] | None = None
    error: StudioError | None = None  # rendering or counting failed (the rows are still shown)


def preview_data(**request: Any) -> Preview:
    """Run the preview in a child process; the keywords are `collect`'s. Raises the StudioError of reading rows."""
    import pandas as pd

    answer = run_json_child([sys.executable, "-m", "studio.data_preview"], stdin_text=json.dumps(request),
                            timeout=PREVIEW_TIMEOUT_S,
                            on_timeout=StudioError("inspection_timeout", seconds=f"{PREVIEW_TIMEOUT_S:g}"),
                            on_crash=lambda reason: StudioError("inspection_failed", reason=reason))
    stats = answer.get("stats")
    if stats is not None:
        stats = {**stats, "histogram": pd.DataFrame(stats["histogram"])}
    error = error_from_json(answer["render_error"]) if answer.get("render_error") else None
    return Preview(answer["rows"], answer["total"], answer.get("rendered", ""), stats, error)


def collect(dataset_dir: str, dataset: str, model_path: str, template: str | None, cutoff_len: int, index: int,
            train_on_prompt: bool, mask_history: bool, placeholders: dict[str, str]) -> dict[str, Any]:
    """The preview as JSON-ready values (in the child). Reading the rows fails the whole; rendering only its part."""
    from studio.datasets import length_stats, preview_rows, render_preview

    rows, total = preview_rows(dataset_dir, dataset, page=index // PAGE_SIZE, page_size=PAGE_SIZE)
    answer: dict[str, Any] = {"rows": json.loads(json.dumps(rows, default=str)), "total": total}
    try:
        answer["rendered"] = render_preview(dataset_dir, dataset, model_path, template, cutoff_len, index,
                                            train_on_prompt=train_on_prompt, mask_history=mask_history,
                                            placeholders=placeholders)
        stats = length_stats(dataset_dir, dataset, model_path, template, cutoff_len)
    except StudioError as err:
        answer["render_error"] = error_to_json(err)
        return answer
    histogram = stats.pop("histogram")
    answer["stats"] = {**stats, "histogram": {"bucket": [str(b) for b in histogram["bucket"]],
                                              "count": [int(c) for c in histogram["count"]]}}
    return answer


def main() -> int:
    """Read the request (JSON on stdin), answer on stdout: the preview, or `{"error": …}`."""
    cap_memory()
    try:
        answer = collect(**json.loads(sys.stdin.read()))
    except StudioError as err:
        answer = {"error": error_to_json(err)}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
