"""The Evaluate tab's benchmark views: the score table and the chart of scores per category across runs, read from
results.json files shaped as engine.eval.report writes them."""

from __future__ import annotations

import json
from pathlib import Path

from studio.i18n import t
from studio.tabs.eval_results import chart_frame, results_frames


def write_run(folder: Path, models: dict[str, dict[str, float]]) -> str:
    """A benchmark run folder whose results.json has, per model, two categories and their average."""
    folder.mkdir(parents=True)
    results = {"task": "studio_bench_test", "models": {
        label: {"subjects": {"studio_bench_arithmetic": {"name": "arithmetic", "category": "STEM",
                                                         "accuracy": scores["STEM"]}},
                "categories": {"STEM": {"accuracy": scores["STEM"]}, "Humanities": {"accuracy": scores["Humanities"]}},
                "average": {"accuracy": scores["average"]}}
        for label, scores in models.items()}}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return str(folder)


def test_chart_puts_base_and_tuned_side_by_side_and_adds_earlier_runs(tmp_path: Path):
    now = write_run(tmp_path / "eval_new", {"base": {"STEM": 25.0, "Humanities": 50.0, "average": 37.5},
                                            "run": {"STEM": 75.0, "Humanities": 50.0, "average": 62.5}})
    before = write_run(tmp_path / "eval_old", {"run": {"STEM": 40.0, "Humanities": 10.0, "average": 25.0}})
    frame = chart_frame([now, before, ""], "en")
    assert list(frame["category"]) == [
        "STEM · base", "STEM · run", "STEM · eval_old: run",
        "Humanities · base", "Humanities · run", "Humanities · eval_old: run",
        "Average · base", "Average · run", "Average · eval_old: run"]
    assert list(frame["score"]) == [25.0, 75.0, 40.0, 50.0, 50.0, 10.0, 37.5, 62.5, 25.0]
    assert set(frame["model"]) == {"base", "run", "eval_old: run"}
    assert chart_frame([str(tmp_path / "nothing")], "en") is None


def test_score_table_has_a_column_per_model_and_the_difference(tmp_path: Path):
    now = write_run(tmp_path / "eval", {"base": {"STEM": 25.0, "Humanities": 50.0, "average": 37.5},
                                        "run": {"STEM": 75.1, "Humanities": 50.0, "average": 62.6}})
    scores, predictions = results_frames(Path(now), "de")
    assert predictions is None
    assert scores.to_dict("records") == [
        {t("eval.subject", "de"): "arithmetic", "base": 25.0, "run": 75.1, t("eval.difference", "de"): 50.1},
        {t("eval.subject", "de"): t("eval.average", "de"), "base": 37.5, "run": 62.6,
         t("eval.difference", "de"): 25.1}]
