"""Start buttons of the Train, Evaluate and Export tabs (a refusal never stops the page following its run), their idle
texts and result tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import StudioError
from studio.i18n import t
from studio.markup import md
from studio.tabs.monitor import launch_job


def _refused(*values: object) -> tuple[dict, Path]:
    raise StudioError("run_already_live", path="saves/demo/lora/busy")


@pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request warns instead of toasting
def test_a_refused_start_leaves_the_followed_run_and_its_timer_alone():
    message, status, run_dir, timer = launch_job("train", _refused, "train.msg.starting", "en", ())
    assert message.startswith("❌") and "already going on" in message
    # Updates that change nothing: the status, the run folder and the polling of a live run stay as they were.
    for update in (status, run_dir, timer):
        assert isinstance(update, dict) and set(update) <= {"__type__"}, update


def test_with_no_job_the_evaluate_and_export_tabs_show_their_idle_texts_in_the_language():
    from studio.tabs.evaluate import poll_eval
    from studio.tabs.export import poll_export

    for poll, args, key in ((poll_eval, ("", "de", 1, None), "eval.msg.idle"),
                            (poll_export, ("", "de", None), "export.msg.idle")):
        status, progress = poll(*args)[:2]
        german, english = md(key, "de"), md(key, "en")
        assert status == german != english and t("train.msg.progress_idle", "de") in progress


def test_result_tables_name_metrics_in_words_and_round_differences(tmp_path: Path):
    from studio.tabs.evaluate import results_frames

    (tmp_path / "predict_results.json").write_text(json.dumps(
        {"predict_bleu-4": 12.345678, "predict_runtime": 65.2, "predict_samples_per_second": 3.1}), encoding="utf-8")
    scores, _ = results_frames(tmp_path, "en")
    assert scores.to_dict("records") == [{"Metric": "BLEU-4 (word overlap) (predictions)", "Value": "12.35"},
                                         {"Metric": "Time (predictions)", "Value": "0:01:05"}]
    (tmp_path / "predict_results.json").unlink()
    subjects = {"math": {"name": "Math", "accuracy": 30.1}}
    (tmp_path / "results.json").write_text(json.dumps({"models": {
        "base": {"subjects": subjects, "average": {"accuracy": 30.1}},
        "tuned": {"subjects": {"math": {"name": "Math", "accuracy": 30.3}}, "average": {"accuracy": 30.3}}}}),
        encoding="utf-8")
    scores, _ = results_frames(tmp_path, "en")
    assert list(scores[t("eval.difference", "en")]) == [0.2, 0.2]  # not 0.19999999999999929


def test_abort_is_red_only_while_a_run_is_live(tmp_path: Path):
    import os

    import gradio as gr

    from engine.runfolder import process_start_time, write_status
    from studio.tabs.monitor import poll

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_status(run_dir, "running", pid=os.getpid(), pid_start_time=process_start_time(os.getpid()))
    first = poll(str(run_dir), "en", "lr", None)
    assert first[9]["variant"] == "stop"
    assert poll(str(run_dir), "en", "lr", first[7])[9] == gr.skip()  # unchanged: nothing sent
    write_status(run_dir, "finished", exit_code=0)
    assert poll(str(run_dir), "en", "lr", first[7])[9]["variant"] == "secondary"
    assert poll("", "en", "lr", None)[9]["variant"] == "secondary"


def test_result_tables_show_only_with_rows(tmp_path: Path):
    import pandas as pd

    from studio.tabs.monitor import table_update

    assert table_update(None) == {"__type__": "update", "visible": False}
    assert table_update(pd.DataFrame()) == {"__type__": "update", "visible": False}  # no Gradio "1 2 3" header
    shown = table_update(pd.DataFrame({"Prompt": ["hi"]}))
    assert shown["visible"] is True and list(shown["value"]["Prompt"]) == ["hi"]
