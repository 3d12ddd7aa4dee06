"""Benchmark results read from lm-eval's results: a score per subject (leaf task), per category (its group) and
overall; results.json and a readable table (LLaMA-Factory's file names) beside lm-eval's own JSON per model.

With two models (`compare_with`) the table has a column per model and the difference (second minus first).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path
from typing import Any

from engine.atomic_write import write_json_atomic
from engine.config import RunConfig

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
RESULTS_LOG = "results.log"
# The metric shown for a task: the first of these it reports, else its first number.
PREFERRED_METRICS = ("acc", "exact_match", "acc_norm", "f1", "mc2", "mcc", "bleu", "word_perplexity")
# Metrics lm-eval reports as fractions; shown as percentages like LLaMA-Factory's accuracy.
FRACTIONS = {"acc", "acc_norm", "exact_match", "f1", "mc1", "mc2", "mcc", "em"}


def lm_eval_file(label: str) -> str:
    """The file holding one model's lm-eval results JSON: `lm_eval_results_<label>.json`."""
    return f"lm_eval_results_{re.sub(r'[^0-9A-Za-z._-]+', '_', label).strip('_') or 'model'}.json"


def main_score(entry: dict[str, Any]) -> tuple[str | None, float | None]:
    """(metric, value) of one lm-eval result entry; fractions become percentages rounded to two places."""
    numbers = {key.split(",")[0]: value for key, value in entry.items()
               if "," in key and "_stderr" not in key and isinstance(value, (int, float))}
    metric = next((m for m in PREFERRED_METRICS if m in numbers), next(iter(numbers), None))
    if metric is None:
        return None, None
    value = float(numbers[metric])
    return metric, round(100 * value if metric in FRACTIONS else value, 2)


def _alias(entry: dict[str, Any], name: str) -> str:
    return str(entry.get("alias") or name).strip().lstrip("- ").strip() or name


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """`{"subjects": {task: {name, category, metric, accuracy, total}}, "categories": {...}, "average": {...}}`.

    Subjects are lm-eval's leaf tasks, categories the groups holding them (MMLU's stem, humanities, ...; for a task
    outside any group, the task itself), the average the top group's score (the mean of several when more were
    asked for). `accuracy` is the task's main metric (a percentage for fractions such as acc).
    """
    scores, children = results.get("results", {}), results.get("group_subtasks", {})
    parent = {child: group for group, kids in children.items() for child in kids}
    roots = [name for name in scores if name not in parent]
    subjects: dict[str, Any] = {}
    categories: dict[str, Any] = {}
    for name, entry in scores.items():
        if name in children:
            continue
        group = parent.get(name, name)
        metric, value = main_score(entry)
        total = (results.get("n-samples", {}).get(name) or {}).get("effective")
        category = _alias(scores.get(group, {}), group)
        subjects[name] = {"name": _alias(entry, name), "category": category, "metric": metric, "accuracy": value,
                          "total": total}
        if category not in categories:
            categories[category] = {"metric": metric, "accuracy": main_score(scores.get(group, entry))[1],
                                    "total": 0}
        categories[category]["total"] += total or 0
    top = [main_score(scores[r])[1] for r in roots]
    top = [v for v in top if v is not None]
    average = round(sum(top) / len(top), 2) if top else None
    return {"subjects": subjects, "categories": categories,
            "average": {"accuracy": average, "total": sum(s["total"] or 0 for s in subjects.values())}}


def difference(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Score of `second` minus `first`, per subject, per category and overall (None where one is missing)."""

    def delta(a: dict[str, Any] | None, b: dict[str, Any] | None) -> float | None:
        if not a or not b or a.get("accuracy") is None or b.get("accuracy") is None:
            return None
        return round(b["accuracy"] - a["accuracy"], 2)

    return {
        "subjects": {k: delta(v, second["subjects"].get(k)) for k, v in first["subjects"].items()},
        "categories": {k: delta(v, second["categories"].get(k)) for k, v in first["categories"].items()},
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


def format_table(title: str, summaries: dict[str, dict[str, Any]]) -> str:
    """Subjects, then categories, then the average: one score column per model, plus Δ for two models."""
    labels = list(summaries)
    first = summaries[labels[0]]
    diff = difference(first, summaries[labels[1]]) if len(labels) == 2 else None

    def cells(kind: str, key: str) -> list[str]:
        values = [_number((summaries[lb][kind].get(key) or {}).get("accuracy")) for lb in labels]
        return values + ([_number(diff[kind][key], True)] if diff else [])

    rows: list[list[str]] = [[info["name"], info["category"], *cells("subjects", key)]
                             for key, info in first["subjects"].items()]
    rows.append([])
    rows += [[name, "(category)", *cells("categories", name)] for name in first["categories"]]
    average = [_number(summaries[lb]["average"]["accuracy"]) for lb in labels]
    rows.append(["Average", "", *average, *([_number(diff["average"], True)] if diff else [])])
    header = ["Subject", "Category", *labels, *(["Δ"] if diff else [])]
    widths = [max(_width(r[i]) for r in [header, *rows] if r) for i in range(len(header))]
    lines = [title, "  ".join(_pad(h, w, right=i >= 2) for i, (h, w) in enumerate(zip(header, widths, strict=True))),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(_pad(c, w, right=i >= 2) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
                     if row else "")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_results(run_dir: Path, plan: Any, config: RunConfig, scores: dict[str, dict[str, Any]], *,
                  complete: bool = True) -> dict[str, Any]:
    """Write results.json and results.log (the table, also printed) from each model's lm-eval results."""
    ev = config.evaluation
    summaries = {label: summarize(results) for label, results in scores.items()}
    labels = list(summaries)
    results: dict[str, Any] = {
        "task": plan.task, "tasks": plan.names, "n_shot": ev.n_shot, "lang": ev.lang, "limit": ev.limit,
        "apply_chat_template": ev.apply_chat_template,
        "template": config.model.template if ev.apply_chat_template else None,
        "complete": complete, "models": summaries,
        "lm_eval_results": {label: lm_eval_file(label) for label in labels},
    }
    if len(labels) == 2:
        results["difference"] = {"of": labels[1], "minus": labels[0],
                                 **difference(summaries[labels[0]], summaries[labels[1]])}
    write_json_atomic(Path(run_dir) / RESULTS_FILE, results)
    if summaries:
        table = format_table(f"{plan.task}: {ev.n_shot}-shot, scores in % (lm-evaluation-harness)", summaries)
        if not complete:
            table += "(stopped before the end: only the models scored completely are shown)\n"
        (Path(run_dir) / RESULTS_LOG).write_text(table, encoding="utf-8")
        print(table, flush=True)
    return results
