"""Benchmark results: accuracy per subject, per category and overall; results.json and a readable table.

With two models (`compare_with`) the table has a column per model and the difference (second minus first).
"""

from __future__ import annotations

import logging
import unicodedata
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.eval.tasks import Task
from engine.runfolder import write_json_atomic

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
RESULTS_LOG = "results.log"


def _accuracy(correct: int, total: int) -> float | None:
    return round(100 * correct / total, 2) if total else None


def summarize(task: Task, counts: dict[str, list[int]]) -> dict[str, Any]:
    """`{"subjects": {key: {name, category, correct, total, accuracy}}, "categories": {...}, "average": {...}}`.

    Accuracy is a percentage; a subject that was not scored (an aborted run) has total 0 and accuracy None.
    """
    subjects: dict[str, Any] = {}
    categories: dict[str, list[int]] = {}
    for subject in task.subjects:
        correct, total = counts.get(subject.key, [0, 0])
        subjects[subject.key] = {"name": subject.name, "category": subject.category, "correct": correct,
                                 "total": total, "accuracy": _accuracy(correct, total)}
        entry = categories.setdefault(subject.category, [0, 0])
        entry[0] += correct
        entry[1] += total
    correct = sum(c for c, _ in categories.values())
    total = sum(t for _, t in categories.values())
    return {
        "subjects": subjects,
        "categories": {name: {"correct": c, "total": t, "accuracy": _accuracy(c, t)}
                       for name, (c, t) in categories.items()},
        "average": {"correct": correct, "total": total, "accuracy": _accuracy(correct, total)},
    }


def difference(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Accuracy of `second` minus `first`, per subject, per category and overall (None where one is missing)."""

    def delta(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        if a.get("accuracy") is None or b.get("accuracy") is None:
            return None
        return round(b["accuracy"] - a["accuracy"], 2)

    return {
        "subjects": {k: delta(v, second["subjects"][k]) for k, v in first["subjects"].items()},
        "categories": {k: delta(v, second["categories"][k]) for k, v in first["categories"].items()},
        "average": delta(first["average"], second["average"]),
    }


def _width(text: str) -> int:
    """Columns `text` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool = False) -> str:
    space = " " * max(width - _width(text), 0)
    return space + text if right else text + space


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def format_table(task: Task, summaries: dict[str, dict[str, Any]], n_shot: int) -> str:
    """Subjects, then categories, then the average: one accuracy column per model, plus Δ for two models."""
    labels = list(summaries)
    first = summaries[labels[0]]
    diff = difference(first, summaries[labels[1]]) if len(labels) == 2 else None
    rows: list[list[str]] = []
    for key, info in first["subjects"].items():
        row = [info["name"], info["category"]] + [_number(summaries[lb]["subjects"][key]["accuracy"]) for lb in labels]
        rows.append(row + ([_number(diff["subjects"][key], True)] if diff else []))
    rows.append([])
    for name in first["categories"]:
        row = [name, "(category)"] + [_number(summaries[lb]["categories"][name]["accuracy"]) for lb in labels]
        rows.append(row + ([_number(diff["categories"][name], True)] if diff else []))
    row = ["Average", ""] + [_number(summaries[lb]["average"]["accuracy"]) for lb in labels]
    rows.append(row + ([_number(diff["average"], True)] if diff else []))
    header = ["Subject", "Category", *labels, *(["Δ"] if diff else [])]
    widths = [max(_width(r[i]) for r in [header, *rows] if r) for i in range(len(header))]
    lines = [f"{task.task}: {len(task.subjects)} subjects, {task.num_questions} questions, {n_shot}-shot, "
             f"accuracy in %",
             "  ".join(_pad(h, w, right=i >= 2) for i, (h, w) in enumerate(zip(header, widths, strict=True))),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(_pad(c, w, right=i >= 2) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     if row else "")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_results(run_dir: Path, task: Task, config: RunConfig, counts: dict[str, dict[str, list[int]]], *,
                  complete: bool = True) -> dict[str, Any]:
    """Write results.json and results.log (the table, also printed) into the run folder; return the results."""
    summaries = {label: summarize(task, model_counts) for label, model_counts in counts.items()}
    labels = list(summaries)
    results: dict[str, Any] = {
        "task": task.task,
        "source": task.source,
        "n_shot": config.evaluation.n_shot,
        "lang": config.evaluation.lang,
        "template": config.model.template,
        "complete": complete,
        "models": summaries,
    }
    if len(labels) == 2:
        results["difference"] = {"of": labels[1], "minus": labels[0],
                                 **difference(summaries[labels[0]], summaries[labels[1]])}
    write_json_atomic(Path(run_dir) / RESULTS_FILE, results)
    table = format_table(task, summaries, config.evaluation.n_shot)
    if not complete:
        table += "(stopped before the end: the counts cover the questions scored so far)\n"
    (Path(run_dir) / RESULTS_LOG).write_text(table, encoding="utf-8")
    print(table, flush=True)
    return results
