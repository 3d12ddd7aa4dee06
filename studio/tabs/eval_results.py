"""What the Evaluate tab shows of a finished job: the score table (per subject, base and tuned side by side), the
chart of scores per category for every model of this run and of earlier benchmark runs, and predictions.

Everything is read from the run folders' files (results.json written by engine.eval.report from lm-eval's results,
predict_results.json, generated_predictions.jsonl), never from a live process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from studio.i18n import t
from studio.run_texts import results_table

PAGE_SIZE = 20
RESULTS_FILE = "results.json"


def read_results(run_dir: Path) -> dict[str, Any]:
    """A benchmark run's results.json ({} when it has none or it cannot be read)."""
    try:
        data = json.loads((Path(run_dir) / RESULTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def score_table(data: dict[str, Any], lang: str) -> pd.DataFrame | None:
    """Subject rows, then the average: a column per model, and their difference for two models."""
    models = data.get("models", {})
    rows: dict[str, dict[str, Any]] = {}
    for label, model in models.items():
        for subject, entry in model.get("subjects", {}).items():
            rows.setdefault(entry.get("name", subject), {})[label] = entry.get("accuracy")
        rows.setdefault(t("eval.average", lang), {})[label] = model.get("average", {}).get("accuracy")
    if not rows:
        return None
    scores = pd.DataFrame([{t("eval.subject", lang): k, **v} for k, v in rows.items()])
    if len(models) == 2:
        first, second = list(models)
        # Scores are percentages with two decimals: so is their difference (no float noise).
        scores[t("eval.difference", lang)] = (pd.to_numeric(scores[second]) - pd.to_numeric(scores[first])).round(2)
    return scores


def results_frames(run_dir: Path, lang: str, page: int = 1) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(score table, one page of predictions next to their references) read from the job's result files."""
    scores = score_table(read_results(run_dir), lang)
    predictions = None
    metrics = run_dir / "predict_results.json"
    if metrics.is_file():
        scores = results_table(json.loads(metrics.read_text(encoding="utf-8")), lang)
    generated = run_dir / "generated_predictions.jsonl"
    if generated.is_file():
        start = (max(int(page or 1), 1) - 1) * PAGE_SIZE
        lines = generated.read_text(encoding="utf-8").splitlines()[start:start + PAGE_SIZE]
        predictions = pd.DataFrame([json.loads(line) for line in lines if line.strip()])
    return scores, predictions


def chart_frame(run_dirs: list[str], lang: str) -> pd.DataFrame | None:
    """Bars for the chart: per model of each run, its score per category and its average.

    A bar's x is "category · model" (one bar per x, so bars never stack); the model is its colour. Models of other
    runs than the first are named `<run folder>: <model>`.
    """
    rows = []
    for index, run_dir in enumerate(dict.fromkeys(d for d in run_dirs if d)):
        for label, model in read_results(Path(run_dir)).get("models", {}).items():
            name = label if index == 0 else f"{Path(run_dir).name}: {label}"
            parts = [(c, v.get("accuracy")) for c, v in model.get("categories", {}).items()]
            parts.append((t("eval.average", lang), model.get("average", {}).get("accuracy")))
            rows += [{"category": f"{category} · {name}", "score": value, "model": name}
                     for category, value in parts if value is not None]
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    order = {c: i for i, c in enumerate(dict.fromkeys(r["category"].split(" · ")[0] for r in rows))}
    return frame.sort_values("category", key=lambda col: col.map(lambda c: order[c.split(" · ")[0]]), kind="stable")


def chart_update(run_dirs: list[str], lang: str) -> Any:
    """The chart's update: shown with its bars (x order kept), hidden while there are none."""
    import gradio as gr

    frame = chart_frame(run_dirs, lang)
    if frame is None:
        return gr.update(visible=False)
    return gr.update(value=frame, visible=True, sort=list(frame["category"]))


def benchmark_runs(current: list[str] | None = None) -> Any:
    """The compare picker: every run folder holding benchmark results (newest first), keeping the current picks."""
    import gradio as gr

    from studio.runs import list_runs
    from studio.workspace import saves_dir

    saves = saves_dir().resolve()
    folders = [Path(run["path"]) for run in list_runs(saves, kind="eval")
               if read_results(Path(run["path"])).get("models")]
    choices = [(str(folder.relative_to(saves)), str(folder)) for folder in folders]
    known = {c[1] for c in choices}
    return gr.update(choices=choices, value=[c for c in current or [] if c in known])
