"""Every list that depends on files refreshes through one handler: on page load in every mode, after an upload is
registered, when a followed job ends and when the language changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runfolder import write_status

LISTS = ("dataset", "eval_dataset", "runs_table", "runs_pick", "checkpoint", "reward_model")


@pytest.fixture(scope="module")
def app():
    from studio.app import create_app

    return create_app("en")


def refreshes(app, trigger_id: int, event: str) -> list[set[int]]:
    """The output ids of each event that `trigger_id`'s `event` starts, chained `.then` steps included."""
    deps = app.config["dependencies"]
    found, chain = [], [dep for dep in deps if (trigger_id, event) in [tuple(t) for t in dep["targets"]]]
    while chain:
        step = chain.pop()
        found.append(set(step["outputs"]))
        chain += [dep for dep in deps if dep.get("trigger_after") == step["id"]]
    return found

def test_every_file_list_refreshes_on_page_load_outside_the_demo_too(app):
    ctx = app.studio_context
    wanted = {ctx[name]._id for name in LISTS}
    assert any(wanted <= outputs for outputs in refreshes(app, app._id, "load"))
    assert any(wanted <= outputs for outputs in refreshes(app, ctx["upload_button"]._id, "click"))
    assert any(wanted <= outputs for outputs in refreshes(app, ctx["job_ended"]._id, "change"))
    # The runs table's headers, job kinds and states are words: they follow a language switch.
    assert any(wanted <= outputs for outputs in refreshes(app, ctx["lang"]._id, "change"))


def test_refresh_lists_reads_the_files_as_they_are_now(studio_home: Path, tmp_path: Path):
    from studio.datasets import register_upload
    from studio.tabs.file_lists import job_ended, refresh_lists
    from studio.workspace import dataset_dir

    upload = tmp_path / "mine.json"
    upload.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]), encoding="utf-8")
    register_upload(upload, dataset_dir("data"), "mine", "alpaca", {})
    run_dir = studio_home / "saves" / "demo" / "lora" / "first"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model_name_or_path: demo\nstage: sft\nfinetuning_type: lora\n")
    (run_dir / "adapter_model.safetensors").write_bytes(b"")
    write_status(run_dir, "finished", pid=1, task="train")
    datasets, eval_datasets, table, picker, checkpoints, rewards = refresh_lists(
        "data", "sft", "en", "Demo (offline)", "demo", "lora")
    assert ("mine", "mine") in datasets["choices"] and ("mine", "mine") in eval_datasets["choices"]  # (label, name)
    assert list(table["Run"]) == ["first"] and picker["choices"] == [str(run_dir)]
    assert checkpoints["choices"] == ["first"] and rewards["choices"] == []
    assert job_ended(str(run_dir), "finished") == f"{run_dir}|finished"
    table = refresh_lists("data", "sft", "ja", "Demo (offline)", "demo", "lora")[2]
    assert table.to_dict("records")[0] | {"開始日時": ""} == {
        "ジョブ": "first", "種類": "学習", "モデル": "demo", "手法": "lora", "ステージ": "sft", "状態": "完了",
        "開始日時": "", "ステップ数": "", "最後の損失": None, "チェックポイント": 0}
