"""What the studio shows about a run: state, progress, loss and metric curves, log tail, read from its run folder.

Each poll reads only the lines appended to trainer_log.jsonl since the last one, so a timer can poll every second.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from engine.errors import format_message
from engine.eval import EVAL_RESULT_FILES
from engine.export import RESULTS_FILE as EXPORT_RESULTS_FILE
from engine.plotting import loss_points, smooth
from engine.runfolder import (
    CONFIG_FILE,
    RUNNING_LOG,
    TRAINER_LOG,
    list_checkpoints,
    read_status,
    read_trainer_log,
    tail_text,
)
from studio.markup import escape_markdown, md
from studio.run_texts import format_duration as format_seconds
from studio.run_texts import format_number, metric_name

LOG_TAIL_LINES = 40
FRAME_COLUMNS = ["step", "value", "series"]
# trainer_log keys that are bookkeeping rather than curves (loss and eval_loss go to the loss chart).
NOT_METRICS = {"current_steps", "total_steps", "percentage", "elapsed_time", "remaining_time", "epoch", "total_tokens",
               "loss", "eval_loss"}
NOT_METRIC_SUFFIXES = ("_runtime", "_per_second")
# Keys the engine also writes under LLaMA-Factory's name (its board reads those): the chart shows the original once.
LF_ALIASES = {"accuracy": "rewards/accuracies"}
MAX_CACHED_RUNS = 16
# A chart is a few hundred pixels wide: more points per series only cost serialising and drawing time.
CHART_POINTS = 600


def empty_frame() -> pd.DataFrame:
    """A curve frame with no points (the shape gr.LinePlot expects)."""
    return pd.DataFrame({"step": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64"),
                         "series": pd.Series(dtype="object")})


@dataclass
class RunView:
    """One poll of a run folder, ready for the UI; `message_key` (under `monitor.`) describes the state."""

    state: str = "new"
    current_steps: int = 0
    total_steps: int = 0
    percentage: float = 0.0
    elapsed: str = ""
    remaining: str = ""
    loss: pd.DataFrame = field(default_factory=empty_frame)
    metrics: pd.DataFrame = field(default_factory=empty_frame)
    log_tail: str = ""
    error: str | None = None
    checkpoint: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    message_key: str = "monitor.no_run"
    message_params: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def loss_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Training loss, its smoothed curve and eval loss as (step, value, series) rows."""
    steps, values = loss_points(records)
    eval_steps, eval_values = loss_points(records, "eval_loss")
    if not steps and not eval_steps:
        return empty_frame()
    return pd.DataFrame({
        "step": steps + steps + eval_steps,
        "value": values + smooth(values) + eval_values,
        "series": ["loss"] * len(steps) + ["smoothed"] * len(steps) + ["eval_loss"] * len(eval_steps),
    })


def metrics_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Every other numeric curve (lr, grad_norm, throughput, stage metrics such as rewards/margins)."""
    steps: list[int] = []
    values: list[float] = []
    series: list[str] = []
    for record in records:
        step = record.get("current_steps")
        if not _is_number(step):
            continue
        for key, value in record.items():
            if key in NOT_METRICS or key.endswith(NOT_METRIC_SUFFIXES) or not _is_number(value):
                continue
            if LF_ALIASES.get(key) in record:
                continue
            steps.append(int(step))
            values.append(float(value))
            series.append(key)
    if not steps:
        return empty_frame()
    return pd.DataFrame({"step": steps, "value": values, "series": series})


def thin_frame(frame: pd.DataFrame, max_points: int = CHART_POINTS) -> pd.DataFrame:
    """A curve frame with at most about `max_points` rows per series, for drawing a long run.

    Each longer series is cut into `max_points // 2` runs of consecutive rows, and the lowest and the highest point
    of each run are kept (spikes stay visible), with the series' first and last points; shorter series are kept
    whole, and the frame comes back unchanged when no series is longer.
    """
    if frame.empty or frame["series"].value_counts().max() <= max_points:
        return frame
    parts = []
    for _, rows in frame.groupby("series", sort=False):
        if len(rows) <= max_points:
            parts.append(rows)
            continue
        rows = rows.reset_index(drop=True)
        bucket = rows.index * max(1, max_points // 2) // len(rows)
        values = rows["value"].groupby(bucket)
        keep = {0, len(rows) - 1, *values.idxmin(), *values.idxmax()}
        parts.append(rows.loc[sorted(keep)])
    return pd.concat(parts, ignore_index=True)


@dataclass
class _LogCache:
    """What was already read from one run's trainer_log.jsonl."""

    file_id: tuple[int, int] | None = None
    offset: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    loss: pd.DataFrame = field(default_factory=empty_frame)
    metrics: pd.DataFrame = field(default_factory=empty_frame)
    tail_key: tuple[int, int] | None = None
    tail: str = ""


class RunMonitor:
    """Polls run folders incrementally; one instance can serve every browser session (it locks its cache)."""

    def __init__(self) -> None:
        self._cache: dict[str, _LogCache] = {}
        self._lock = threading.Lock()

    def poll(self, run_dir: str | Path | None) -> RunView:
        """The run's current view; reads only what was appended to its files since the previous poll."""
        if not run_dir or not Path(run_dir).is_dir():
            return RunView(run_dir=str(run_dir) if run_dir else None)
        run_dir = Path(run_dir)
        status = read_status(run_dir)  # also turns a dead `running` run into `failed`
        with self._lock:
            cache = self._update(run_dir)
            view = RunView(state=status.get("state", "unknown"), loss=cache.loss, metrics=cache.metrics,
                           log_tail=cache.tail, error=status.get("error"), run_dir=str(run_dir))
            progress = cache.progress
        view.current_steps = int(progress.get("current_steps") or 0)
        view.total_steps = int(progress.get("total_steps") or 0)
        view.percentage = float(progress.get("percentage") or 0.0)
        view.elapsed = str(progress.get("elapsed_time") or "")
        view.remaining = str(progress.get("remaining_time") or "")
        if view.state == "finished":
            view.percentage, view.remaining = 100.0, "0:00:00"
            view.results = _read_results(run_dir)
        if view.state == "aborted":  # where the engine saved on abort (None when it could not)
            view.checkpoint = status.get("checkpoint")
        else:
            checkpoints = list_checkpoints(run_dir)
            view.checkpoint = str(checkpoints[-1]) if checkpoints else None
        view.message_key, view.message_params = _describe(view, run_dir, job_kind(run_dir, status))
        return view

    def forget(self, run_dir: str | Path) -> None:
        """Drop what is cached about a run folder (after it was deleted)."""
        with self._lock:
            self._cache.pop(str(Path(run_dir)), None)

    def _update(self, run_dir: Path) -> _LogCache:
        key = str(run_dir)
        cache = self._cache.get(key)
        if cache is None:
            if len(self._cache) >= MAX_CACHED_RUNS:
                self._cache.pop(next(iter(self._cache)))
            cache = self._cache[key] = _LogCache()
        try:
            st = os.stat(run_dir / TRAINER_LOG)
            file_id, size = (st.st_dev, st.st_ino), st.st_size
        except OSError:
            file_id, size = None, 0
        # A replaced or shorter file (resume truncates, overwrite clears): read it again from the start.
        if file_id != cache.file_id or size < cache.offset:
            cache.file_id, cache.offset, cache.records, cache.progress = file_id, 0, [], {}
            cache.loss, cache.metrics = empty_frame(), empty_frame()
        if file_id is not None and size > cache.offset:
            new, cache.offset = read_trainer_log(run_dir, cache.offset)
            if new:
                cache.records.extend(new)
                cache.loss, cache.metrics = loss_frame(cache.records), metrics_frame(cache.records)
                stepped = [r for r in new if _is_number(r.get("current_steps"))]
                if stepped:
                    cache.progress = stepped[-1]
        cache.tail_key, cache.tail = _log_tail(run_dir / RUNNING_LOG, cache.tail_key, cache.tail)
        return cache


def _log_tail(path: Path, key: tuple[int, int] | None, tail: str) -> tuple[tuple[int, int] | None, str]:
    """The last lines of running_log.txt, re-read only when its size or modification time changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None, ""
    new_key = (st.st_size, st.st_mtime_ns)
    if new_key == key:
        return key, tail
    return new_key, tail_text(path, max_lines=LOG_TAIL_LINES)


def _read_results(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "all_results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


JOB_KINDS = ("train", "eval", "export", "judge")
# Folders written before status.json named their job kind are known by their results.
_KIND_FILES = (("export", (EXPORT_RESULTS_FILE, "parity.json")), ("eval", EVAL_RESULT_FILES))


def job_kind(run_dir: Path, status: dict[str, Any] | None = None) -> str:
    """Which job wrote a folder: `train`, `eval`, `export` or `judge` (status.json's `task`, else its result files; a
    folder that says nothing is a training run)."""
    status = read_status(run_dir, reconcile=False) if status is None else status
    task = status.get("task")
    if task in JOB_KINDS:
        return task
    for kind, files in _KIND_FILES:
        if any((run_dir / name).exists() for name in files):
            return kind
    return "train"


def _describe(view: RunView, run_dir: Path, kind: str) -> tuple[str, dict[str, Any]]:
    """The locale key (and its values) that says in words what the run (a job of `kind`) is doing."""
    path = str(run_dir)
    # Evaluation and export jobs use the same folder contract; their texts must not speak of training.
    job = "monitor.job_" if kind != "train" else "monitor."
    if view.state == "running":
        if not view.total_steps:
            return "monitor.starting", {"path": path}
        return f"{job}running", {"current": view.current_steps, "total": view.total_steps,
                                 "percentage": f"{view.percentage:.1f}"}
    if view.state == "finished":
        return f"{job}finished", {"path": path}
    if view.state == "failed":
        error = (view.error or "").strip() or "?"
        return "monitor.failed", {"error": error if error.endswith((".", "!", "?")) else error + "."}
    if view.state == "aborted":
        if view.checkpoint:
            return "monitor.aborted_checkpoint", {"path": view.checkpoint}
        return "monitor.aborted", {"path": path}
    if view.state == "new":
        if (run_dir / CONFIG_FILE).exists():
            return "monitor.new", {"path": path}
        return "monitor.no_run", {}
    return "monitor.unknown", {"path": path}


def chart_frame(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A curve frame for a chart in `lang`: each series (loss, smoothed, lr, rewards/margins, …) under its name in
    that language; the frames the monitor caches keep the keys."""
    if frame.empty:
        return frame
    names = {key: metric_name(key, lang) for key in frame["series"].unique()}
    return frame.assign(series=frame["series"].map(names))


def metric_choices(keys: list[str], lang: str) -> list[tuple[str, str]]:
    """(name in `lang`, key) pairs for the metric picker."""
    return [(metric_name(key, lang), key) for key in keys]


def last_logged_loss(view: RunView) -> float | None:
    """The training loss of the last logged step (what the chart and the runs table end on)."""
    losses = view.loss[view.loss["series"] == "loss"]["value"] if not view.loss.empty else []
    return float(losses.iloc[-1]) if len(losses) else None


def progress_text(view: RunView, lang: str = "en") -> str:
    """One line such as "Step 12 of 100 (12.0%) · 0:00:10 elapsed · about 0:01:05 left"."""
    if not view.total_steps:
        return format_message("monitor.progress_none", lang)
    return format_message("monitor.progress", lang, current=view.current_steps, total=view.total_steps,
                          percentage=f"{view.percentage:.1f}", elapsed=view.elapsed or "0:00:00",
                          remaining=view.remaining or "?")


def status_markdown(view: RunView, lang: str = "en") -> str:
    """The run's state in a few Markdown lines: state, what it means, progress, and final results."""
    # The cause of a failure comes from the run folder (a path, a dataset name, a line of the log): escaped.
    state = md(f"monitor.state.{view.state}", lang)
    lines = [f"**{state}**: {md(view.message_key, lang, **view.message_params)}"]
    if view.total_steps and view.state in ("aborted", "failed"):  # a running run has the progress bar
        lines.append(escape_markdown(progress_text(view, lang)))
    if view.state == "finished":
        # The trainer's train_loss is the mean over the whole run, far above where the curve ends: the final loss
        # is the last logged one, and the mean goes under its own name.
        final, mean = last_logged_loss(view), view.results.get("train_loss")
        runtime = format_seconds(view.results.get("train_runtime")) or "?"
        if final is not None:
            lines.append(md("monitor.results", lang, loss=format_number(final), runtime=runtime))
        if _is_number(mean):
            lines.append(md("monitor.results_mean", lang, mean=format_number(mean)))
    if view.state == "failed" and view.log_tail:
        lines.append(md("monitor.see_log", lang))
    return "\n\n".join(lines)
