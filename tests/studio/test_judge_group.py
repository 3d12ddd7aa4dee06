"""The Judge group of the Evaluate & Predict tab: its form becomes a judge job started through the queue, its poll
shows mean ± spread and the rows, and a public demo refuses judge endpoints its host did not list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import StudioError
from engine.eval.judge_scores import DEFAULT_RUBRIC
from engine.runfolder import wait_for_state
from studio import demo_mode
from studio.demo_settings import DemoSettings
from studio.runner import start_run
from studio.runs import list_runs
from studio.tabs.evaluate import build_judge_config, judge_runs, latest_judgment, poll_judge
from tests.engine.test_judge import KEY, SCORES, fixed_judge  # noqa: F401 - the fixed-score endpoint fixture

FORM = {"key_env": "JUDGE_API_KEY", "scale_min": 1, "scale_max": 10, "max_samples": 0, "concurrency": 2,
        "rubric": DEFAULT_RUBRIC}


def predictions_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model_name_or_path: demo\nfinetuning_type: lora\ndo_predict: true\n")
    rows = [{"prompt": f"q{i}", "predict": f"answer {s}", "label": "ref"} for i, s in enumerate(SCORES)]
    rows.append({"prompt": "q?", "predict": "answer ?", "label": "ref"})
    (folder / "generated_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_the_form_needs_predictions_and_keeps_the_default_rubric_out_of_the_config(tmp_path: Path):
    with pytest.raises(StudioError) as info:
        build_judge_config(None, "http://127.0.0.1:1/v1", "m", **FORM)
    assert info.value.key == "judge_no_predictions"
    run = predictions_run(tmp_path / "run")
    config, run_dir = build_judge_config(str(run), " http://h/v1 ", "m", **FORM)
    assert config["judge_rubric"] is None and config["judge_max_samples"] is None
    assert config["judge_base_url"] == "http://h/v1" and config["model_name_or_path"] == "demo"
    assert run_dir.parent == run and run_dir.name.startswith("judge_")
    config, _ = build_judge_config(str(run), "http://h/v1", "m", **{**FORM, "rubric": "Rate {predict}"})
    assert config["judge_rubric"] == "Rate {predict}"


@pytest.mark.slow
def test_a_judge_job_started_from_the_tab_runs_and_its_poll_shows_the_numbers(
        studio_home: Path, fixed_judge: str, monkeypatch: pytest.MonkeyPatch):  # noqa: F811
    monkeypatch.setenv("JUDGE_API_KEY", KEY)
    run = predictions_run(studio_home / "saves" / "demo" / "lora" / "eval_one")
    assert judge_runs("en")["choices"] == [("demo/lora/eval_one", str(run))]
    config, run_dir = build_judge_config(str(run), fixed_judge, "fixed", **FORM)
    assert start_run(config, run_dir, command="judge", devices=[])["state"] == "running"
    status = wait_for_state(run_dir, timeout=120)
    assert status["state"] == "finished", (run_dir / "running_log.txt").read_text()
    assert latest_judgment(str(run)) == str(run_dir)
    kinds = {run["name"]: run["kind"] for run in list_runs()}  # not a training run the Train tab would follow
    assert kinds[run_dir.name] == "judge"
    text, _, summary, table, *_ = poll_judge(str(run_dir), "en", None)
    assert "finished" in text
    assert summary.startswith("**Mean 5**") and "8 rows scored, 1 without a readable score" in summary
    frame = table["value"]
    assert list(frame.columns) == ["Row", "Score", "Reason", "Why no score", "Prediction", "Reference"]
    assert len(frame) == 9 and frame["Score"].isna().sum() == 1


def test_the_demo_refuses_judge_endpoints_it_does_not_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    workspace = tmp_path / "ws"
    run = predictions_run(workspace / "saves" / "demo" / "lora" / "eval_one")
    config, run_dir = build_judge_config(str(run), "http://judge.example:8000/v1/", "m", **FORM)
    config["output_dir"] = str(run_dir)
    with pytest.raises(StudioError) as info:
        demo_mode.apply_limits(config, "judge", workspace, DemoSettings())
    assert info.value.key == "demo_judge_endpoint" and "judge.example" in info.value.message()
    monkeypatch.setenv("STUDIO_DEMO_JUDGE_ENDPOINTS", "http://judge.example:8000/v1, http://other/v1")
    settings = DemoSettings.from_env()
    assert settings.judge_endpoints == ("http://judge.example:8000/v1", "http://other/v1")
    limited = demo_mode.apply_limits(config, "judge", workspace, settings)
    assert limited["judge_max_samples"] == settings.max_samples
    with pytest.raises(StudioError) as info:  # the host's key stays the host's: its variable cannot be changed
        demo_mode.apply_limits({**config, "judge_api_key_env": "HF_TOKEN"}, "judge", workspace, settings)
    assert info.value.key == "demo_key_not_allowed"
