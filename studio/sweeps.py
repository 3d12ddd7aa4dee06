"""Sweeps: a few values for some numeric settings → one queued training run per combination, compared afterwards.

A spec is a mapping setting → values, written one setting a line (`learning_rate: 1e-4, 5e-5`). Each value is
checked against its config field (type, min/max, choices) as the engine checks a config. The sweep's runs are
siblings `<run name>-<suffix>` in one method folder; each holds a `sweep.json` naming the sweep and its values, so
the comparison finds them from the files after a reload. Pure: no Gradio, no request context (the demo's
allowance is passed in by the caller).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from engine.atomic_write import write_json_atomic
from engine.config.fields import coerce_value
from engine.config.loader import ALIASES, KEYS, PASSTHROUGH_KEYS, config_from_dict, trainer_field_type
from engine.config.validate import check_field_ranges
from engine.errors import Phrase, StudioError, format_message
from engine.plotting import loss_points
from engine.runfolder import ALL_RESULTS, read_status, read_trainer_log
from studio.monitor import thin_frame
from studio.run_texts import format_duration, format_number
from studio.runs import folder_name, overlay_losses

SWEEP_MAX_RUNS = 32  # combinations one sweep may queue (a public demo allows fewer: see `sweep_limit`)
SWEEP_FILE = "sweep.json"  # beside config.yaml in each of a sweep's run folders
# Short names in run-folder suffixes (`-lr1e-4-r8`); other settings go by their key.
SHORT_NAMES = {"learning_rate": "lr", "lora_rank": "r", "lora_alpha": "a", "lora_dropout": "do",
               "num_train_epochs": "ep", "per_device_train_batch_size": "bs", "gradient_accumulation_steps": "ga",
               "warmup_steps": "wu", "max_steps": "steps", "cutoff_len": "len", "weight_decay": "wd"}
COMPARE_COLUMNS = ("best", "name", "values", "state", "final_loss", "final_eval_loss", "best_eval_loss", "runtime",
                   "tokens_per_second")


class SweepLineError(StudioError):
    """A bad line of a sweep spec: its number and text, and the config check that refused it (translated with it;
    the studio's Markdown and HTML renderers escape its values as they do a bad dataset row's)."""

    def __init__(self, line: int, text: str, cause: StudioError) -> None:
        self.problems = [(cause.key, dict(cause.params))]
        self.more = 0
        super().__init__("sweep_bad_line", line=line, text=text)

    def message(self, lang: str = "en") -> str:
        """The line's number and text, then what is wrong with it, in `lang`."""
        key, params = self.problems[0]
        problem = format_message(f"error.{key}", lang,
                                 **{k: v.localized(lang) if isinstance(v, Phrase) else v for k, v in params.items()})
        return format_message(f"error.{self.key}", lang, problem=problem, **self.params)


def _numeric_type(key: str) -> Any:
    """The config type of a numeric setting (None when `key` is no setting, or not a number)."""
    if key in KEYS:
        tp = KEYS[key][2]
    elif key in PASSTHROUGH_KEYS:
        tp = trainer_field_type(key)
    else:
        return None
    bases = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return tp if len(bases) == 1 and bases[0] in (int, float) else None


def _check_value(key: str, text: str, tp: Any) -> int | float:
    """One value as its field's type, within the field's range (a ConfigError from the engine's checks)."""
    value = coerce_value(key, text, tp)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise StudioError("sweep_not_a_number", key=key, value=text)
    if key in KEYS:
        check_field_ranges(config_from_dict({key: value}, source="the sweep"))
    return value


def parse_sweep(text: str | None) -> dict[str, list[int | float]]:
    """The spec's lines (`setting: value, value, …`; blank lines and `#` comments skipped) → setting → values.

    Raises SweepLineError naming the line for an unknown or non-numeric setting, a setting given twice, no values,
    or a value of the wrong type or out of the field's range.
    """
    spec: dict[str, list[int | float]] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key, sep, values = line.partition(":") if ":" in line else line.partition("=")
            key = ALIASES.get(key.strip(), key.strip())
            if not sep or not key:
                raise StudioError("sweep_no_colon")
            tp = _numeric_type(key)
            if tp is None:
                raise StudioError("sweep_unknown_key" if key not in KEYS and key not in PASSTHROUGH_KEYS
                                  else "sweep_not_numeric", key=key)
            if key in spec:
                raise StudioError("sweep_key_twice", key=key)
            items = [item.strip() for item in values.split(",") if item.strip()]
            if not items:
                raise StudioError("sweep_no_values", key=key)
            checked = [_check_value(key, item, tp) for item in items]
        except StudioError as err:
            raise SweepLineError(number, raw.strip(), err) from None
        spec[key] = list(dict.fromkeys(checked))  # a value typed twice is one run
    return spec


def count_runs(spec: Mapping[str, list[Any]]) -> int:
    """How many runs the spec makes (the product of its value counts; 0 for an empty spec)."""
    return math.prod(len(values) for values in spec.values()) if spec else 0


def sweep_limit(demo_allowance: int | None = None) -> int:
    """The most runs one sweep may queue: SWEEP_MAX_RUNS, or fewer in a public demo (`demo_allowance`: the runs the
    visitor may still start)."""
    return SWEEP_MAX_RUNS if demo_allowance is None else max(0, min(SWEEP_MAX_RUNS, demo_allowance))


def check_size(spec: Mapping[str, list[Any]], limit: int = SWEEP_MAX_RUNS, *, demo: bool = False) -> int:
    """The number of runs, after refusing an empty spec or one that makes more than `limit` runs (`demo`: the limit
    is what a public demo's visitor may still queue, and the message says so)."""
    count = count_runs(spec)
    if count == 0:
        raise StudioError("sweep_empty")
    if count > limit:
        raise StudioError("sweep_too_many_demo" if demo else "sweep_too_many", count=count, limit=limit)
    return count


def format_value(value: int | float) -> str:
    """A value as a run name shows it: `1e-4` for small or large floats, else the shortest plain form."""
    if isinstance(value, float) and value and (abs(value) < 1e-3 or abs(value) >= 1e6):
        mantissa, exponent = f"{value:.6e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_suffix(values: Mapping[str, Any]) -> str:
    """`lr1e-4-r8` for {learning_rate: 1e-4, lora_rank: 8}: the varied values, in the spec's order."""
    return "-".join(f"{SHORT_NAMES.get(key, key)}{format_value(value)}" for key, value in values.items())


def expand_sweep(base_config: dict[str, Any], spec: Mapping[str, list[Any]],
                 limit: int = SWEEP_MAX_RUNS) -> list[tuple[str, dict[str, Any]]]:
    """(run-name suffix, config) for each combination of the spec's values over `base_config` (the cartesian
    product, first setting slowest). A spec that makes more than `limit` runs is refused before any is built."""
    check_size(spec, limit)
    keys = list(spec)
    runs = []
    for combo in itertools.product(*(spec[key] for key in keys)):
        values = dict(zip(keys, combo, strict=True))
        runs.append((run_suffix(values), {**base_config, **values}))
    return runs


def new_sweep_id(now: datetime | None = None) -> str:
    """`sweep_YYYY-MM-DD-HH-MM-SS`, the base run name of a sweep started without one."""
    return f"sweep_{now or datetime.now():%Y-%m-%d-%H-%M-%S}"


def write_sweep_record(run_dir: Path, sweep_id: str, values: Mapping[str, Any]) -> None:
    """Record in the run folder that it belongs to `sweep_id`, with the values this run tries."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / SWEEP_FILE, {"sweep": sweep_id, "values": dict(values)})


def read_sweep_record(run_dir: str | Path) -> dict[str, Any]:
    """The folder's `sweep.json` ({} when it has none or it cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("sweep"), str) else {}


Enqueue = Callable[..., Any]


def queue_sweep(base_config: dict[str, Any], run_dir: Path, spec: Mapping[str, list[Any]], *, enqueue: Enqueue,
                lang: str = "en", limit: int = SWEEP_MAX_RUNS,
                check_new: Callable[[dict[str, Any], Path], None] | None = None, devices: list[int] | None = None,
                env: dict[str, str] | None = None) -> list[Path]:
    """Queue one training run per combination: `<run_dir>-<suffix>` beside `run_dir`, each with its sweep record.

    `base_config` and `run_dir` are what the Train form makes for one run (the folder's name is the sweep id).
    Every run's name and folder are checked (`check_new`) before any is queued; `enqueue(config, run_dir,
    kind="train", devices=devices, lang=lang[, env=env])` is the queue's (`studio.queue.enqueue_run`). A run the
    queue refuses leaves no record behind; the runs queued before it stay queued, and the refusal is raised.
    Returns the queued run folders.
    """
    sweep_id = run_dir.name
    planned = []
    for suffix, config in expand_sweep(base_config, spec, limit):
        folder = run_dir.parent / folder_name(f"{sweep_id}-{suffix}")
        config = {**config, "output_dir": str(folder)}
        if check_new is not None:
            check_new(config, folder)
        planned.append((folder, config, {key: config[key] for key in spec}))
    queued = []
    for folder, config, values in planned:
        existed = folder.exists()
        write_sweep_record(folder, sweep_id, values)
        try:
            enqueue(config, folder, kind="train", devices=devices, lang=lang, **({"env": env} if env else {}))
        except BaseException:
            (folder / SWEEP_FILE).unlink(missing_ok=True)
            if not existed and not any(folder.iterdir()):
                folder.rmdir()
            raise
        queued.append(folder)
    return queued


def find_sweeps(saves: str | Path) -> dict[str, list[Path]]:
    """Sweep id → its run folders (sorted by name), found from the `sweep.json` files under `saves`."""
    found: dict[str, list[Path]] = {}
    for root, dirs, files in os.walk(saves):
        dirs[:] = [d for d in dirs if not d.startswith((".", "checkpoint-"))]
        if SWEEP_FILE in files:
            record = read_sweep_record(root)
            if record:
                found.setdefault(record["sweep"], []).append(Path(root))
    return {sweep: sorted(dirs) for sweep, dirs in sorted(found.items())}


def _seconds(text: Any) -> float | None:
    """`H:MM:SS` (the trainer log's elapsed time) → seconds."""
    try:
        hours, minutes, seconds = (float(part) for part in str(text).split(":"))
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def describe_sweep_run(run_dir: str | Path) -> dict[str, Any]:
    """One run's row of the comparison, from its folder: losses, run time, tokens per second and state."""
    run_dir = Path(run_dir)
    records = read_trainer_log(run_dir)[0] if (run_dir / "trainer_log.jsonl").exists() else []
    try:
        results = json.loads((run_dir / ALL_RESULTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = {}
    results = results if isinstance(results, dict) else {}
    losses = loss_points(records)[1]
    evals = loss_points(records, "eval_loss")[1]
    final_eval = _number(results.get("eval_loss"))
    if final_eval is None and evals:
        final_eval = evals[-1]
    if final_eval is not None:
        evals = [*evals, final_eval]
    timed = [r for r in records if r.get("elapsed_time")]
    runtime = _number(results.get("train_runtime"))
    if runtime is None and timed:
        runtime = _seconds(timed[-1]["elapsed_time"])
    speed = _number(results.get("train_tokens_per_second"))
    speeds = [r["throughput"] for r in records if _number(r.get("throughput")) is not None]
    if speed is None and speeds:
        speed = float(speeds[-1])
    status = read_status(run_dir) if (run_dir / "status.json").exists() else {}
    record = read_sweep_record(run_dir)
    return {"path": str(run_dir), "name": run_dir.name, "values": record.get("values", {}),
            "state": status.get("state", "new"), "final_loss": losses[-1] if losses else None,
            "final_eval_loss": final_eval, "best_eval_loss": min(evals) if evals else None,
            "runtime": runtime, "tokens_per_second": speed}


def compare_runs(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The sweep's runs side by side (COMPARE_COLUMNS), the best one marked in `best`: the lowest best eval loss
    when any run evaluated, else the lowest final training loss."""
    rows = [describe_sweep_run(d) for d in run_dirs]
    for row in rows:
        row["values"] = ", ".join(f"{k}={format_value(v)}" for k, v in row["values"].items())
        row["best"] = False
    metric = "best_eval_loss" if any(r["best_eval_loss"] is not None for r in rows) else "final_loss"
    scored = [r for r in rows if r[metric] is not None]
    if scored:
        min(scored, key=lambda r: r[metric])["best"] = True
    return pd.DataFrame([{c: r[c] for c in COMPARE_COLUMNS} for r in rows], columns=list(COMPARE_COLUMNS))


def comparison_table(frame: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """`compare_runs`' frame as shown: ★ on the best run, numbers rounded, run time as H:MM:SS, states and
    headers in `lang`."""
    shown = frame.copy()
    shown["best"] = shown["best"].map(lambda best: "★" if best else "")
    shown["state"] = shown["state"].map(lambda state: format_message(f"monitor.state.{state}", lang))
    for column in ("final_loss", "final_eval_loss", "best_eval_loss", "tokens_per_second"):
        shown[column] = shown[column].map(lambda v: "" if v is None or pd.isna(v) else format_number(float(v)))
    shown["runtime"] = shown["runtime"].map(lambda v: "" if v is None or pd.isna(v) else format_duration(v))
    return shown.rename(columns={c: format_message(f"sweep.column.{c}", lang) for c in COMPARE_COLUMNS})


def sweep_chart(frame: pd.DataFrame, run_dirs: list[str | Path]) -> pd.DataFrame:
    """The training loss of the sweep's runs on one chart (`studio.runs.overlay_losses`), the best run's series
    named with a ★."""
    chart = thin_frame(overlay_losses(run_dirs))
    best = frame.loc[frame["best"], "name"].tolist() if len(frame) else []
    if best and not chart.empty:
        chart = chart.assign(series=chart["series"].map(lambda s: f"★ {s}" if s == best[0] else s))
    return chart
