"""A run's numbers and log in words: metric names in the user's language, numbers rounded for reading, the results
table, and a log tail without Python dicts, progress bars and library warnings.

The engine's files keep the trainer's raw keys (`train_samples_per_second`, `rewards/margins`); only what a person
reads is translated, from `metric.<key>` in the locales (the key itself where no name is known).
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

import pandas as pd

from engine import jobs
from engine.errors import format_message, load_locale

# Keys about the machine's speed and the trainer's bookkeeping, not about how well the model learned.
BOOKKEEPING_SUFFIXES = ("_per_second", "_model_preparation_time", "total_flos")
_PREFIXES = ("train_", "eval_", "predict_")
_TQDM = re.compile(r"(?:[A-Za-z][\w ]*:\s*)?\d{1,3}%\|[^|\n]*\|\s*(\d+)/(\d+)\s*\[[^\]\n]*\]")
_DICT = re.compile(r"\{'[^{}]*\}")
_PY_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")
_LOG_LINE = re.compile(r"^\[(?P<time>[\d:]+)\] (?P<level>[A-Z]+) (?P<name>[\w.]+): (?P<text>.*)$")
_SUMMARY_ROW = re.compile(r"^\s+(?P<key>[\w/.-]+)\s+=\s+(?P<value>.+)$")
_SUMMARY_HEADER = re.compile(r"^\*+ \w+ metrics \*+$")


def format_number(value: Any, digits: int = 4) -> str:
    """A number as a person reads it: about `digits` significant digits, no float noise (3.120000000000001 → 3.12);
    anything else as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return format_number(int(value))
    return f"{value:.{digits}g}"


def metric_name(key: str, lang: str) -> str:
    """The name of a logged metric in `lang` (`metric.<key>`, or without its train_/eval_/predict_ prefix with the
    prefix's own word), else the key as it is."""
    texts, english = load_locale(lang), load_locale("en")
    if f"metric.{key}" in texts or f"metric.{key}" in english:
        return format_message(f"metric.{key}", lang)
    for prefix in _PREFIXES:
        rest = key[len(prefix):]
        if key.startswith(prefix) and (f"metric.{rest}" in english):
            return format_message(f"metric.prefix.{prefix.rstrip('_')}", lang,
                                  name=format_message(f"metric.{rest}", lang))
    return key


def is_bookkeeping(key: str) -> bool:
    """Whether a result key is about speed or bookkeeping rather than the model (samples per second, FLOPs)."""
    return key.endswith(BOOKKEEPING_SUFFIXES)


def results_table(results: dict[str, Any], lang: str) -> pd.DataFrame:
    """A results file (`all_results.json`, `predict_results.json`) as a two-column table: each metric's name in
    `lang` and its value rounded; run times as H:MM:SS; speed and bookkeeping keys left out."""
    rows = []
    for key, value in results.items():
        if is_bookkeeping(key) or isinstance(value, (dict, list)):
            continue
        shown = format_duration(value) if key.endswith("_runtime") else format_number(value)
        rows.append({format_message("metric.column.name", lang): metric_name(key, lang),
                     format_message("metric.column.value", lang): shown})
    return pd.DataFrame(rows, columns=[format_message("metric.column.name", lang),
                                       format_message("metric.column.value", lang)])


def format_duration(seconds: Any) -> str:
    """`H:MM:SS` for a number of seconds (empty when unknown)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return ""
    return jobs.format_duration(seconds)  # the engine's own progress lines write durations the same way


def _metrics_in_words(values: dict[str, Any], lang: str) -> str:
    parts = []
    for key, value in values.items():
        if is_bookkeeping(key) or key.endswith("_runtime"):
            continue
        try:
            number: Any = float(value) if isinstance(value, str) else value
        except ValueError:
            number = value
        parts.append(f"{metric_name(key, lang)} {format_number(number)}")
    return " · ".join(parts)


def _number_text(text: str) -> str:
    try:
        return format_number(float(text))
    except ValueError:
        return text


def _logged_dict(line: str, lang: str) -> str | None:
    """A trainer's printed `{'loss': '2.1', ...}` as one line in words (None when the line holds no such dict)."""
    found = _DICT.search(line)
    if not found:
        return None
    try:
        values = ast.literal_eval(found.group(0))
    except (ValueError, SyntaxError):
        return None
    if not isinstance(values, dict):
        return None
    steps = _TQDM.findall(line[:found.start()])
    words = _metrics_in_words(values, lang)
    if "train_loss" in values:  # the end-of-training summary (each step also reports its runtime)
        return format_message("monitor.log.summary", lang, metrics=words)
    if steps:
        current, total = steps[-1]
        return format_message("monitor.log.step", lang, current=current, total=total, metrics=words)
    return words


def readable_log(text: str, lang: str) -> str:
    """The log tail for people: one line per logging step in words, progress bars and the trainer's dicts gone,
    the final metrics table named in `lang`, and library warnings folded into one line saying how many there were
    (the engine's own messages and any error stay as they are)."""
    lines: list[str] = []
    warnings = 0
    skip_source_line = in_summary = False
    for raw in text.splitlines():
        row = _SUMMARY_ROW.match(raw) if in_summary else None
        in_summary = bool(row) or bool(_SUMMARY_HEADER.match(raw.strip()))
        if row:
            if not is_bookkeeping(row["key"]):
                lines.append(f"  {metric_name(row['key'], lang)}: {_number_text(row['value'].strip())}")
            continue
        if skip_source_line and raw.startswith("  "):  # the source line Python prints under a warning
            skip_source_line = False
            continue
        skip_source_line = False
        if _PY_WARNING.match(raw):
            warnings += 1
            skip_source_line = True
            continue
        logged = _logged_dict(raw, lang)
        if logged is not None:
            lines.append(logged)
            continue
        line = _TQDM.sub("", raw).strip() if _TQDM.search(raw) else raw.rstrip()
        if not line:
            continue
        record = _LOG_LINE.match(line)
        if record:
            if record["level"] == "WARNING" and not record["name"].startswith("engine"):
                warnings += 1
                continue
            level = "" if record["level"] == "INFO" else f"{record['level']} "
            line = f"[{record['time']}] {level}{record['text']}"
        elif _SUMMARY_HEADER.match(line):
            line = format_message("monitor.log.results", lang)
        lines.append(line)
    if warnings:
        lines.append(format_message("monitor.log.warnings", lang, count=warnings))
    return "\n".join(lines)
