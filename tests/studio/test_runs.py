"""The runs list on hand-made saves folders: naming, listing, table, resume, delete, comparison and adapters."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from engine.errors import StudioError
from engine.runfolder import process_start_time, write_status
from studio.runs import (
    default_run_name,
    delete_run,
    list_adapters,
    list_runs,
    overlay_losses,
    resume_config,
    run_folder,
    runs_table,
)


def make_run(saves: Path, model: str, method: str, name: str, *, state: str | None = "finished",
             losses: tuple[float, ...] = (), checkpoints: tuple[int, ...] = (), started: str | None = None,
             weights: str | None = None) -> Path:
    run_dir = saves / model / method / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"model_name_or_path: org/{model}\nstage: sft\nfinetuning_type: {method}\n"
                                         f"learning_rate: 0.001\noutput_dir: {run_dir}\n")
    if losses:
        (run_dir / "trainer_log.jsonl").write_text("".join(
            json.dumps({"current_steps": step, "total_steps": len(losses), "loss": loss}) + "\n"
            for step, loss in enumerate(losses, start=1)))
    for step in checkpoints:
        (run_dir / f"checkpoint-{step}").mkdir()
        (run_dir / f"checkpoint-{step}" / "adapter_model.safetensors").write_bytes(b"")
        (run_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")  # written last: complete
    if state:
        write_status(run_dir, state, pid=1, started_at=started, exit_code=0)
    if weights:
        (run_dir / weights).write_bytes(b"")
    return run_dir


def make_live(run_dir: Path) -> None:
    write_status(run_dir, "running", pid=os.getpid(), pid_start_time=process_start_time(os.getpid()))


def test_run_folder_checks_each_part(studio_home: Path):
    saves = studio_home / "saves"
    assert run_folder("Qwen/Qwen2.5-0.5B-Instruct", "lora", "my run!") == saves / "Qwen2.5-0.5B-Instruct/lora/my run!"
    assert run_folder("/models/tiny/", "full", "a.b-c_d", saves=Path("/x")) == Path("/x/tiny/full/a.b-c_d")
    assert run_folder("Modèle 7B", "lora", "train_1").parts[-3] == "Modèle 7B"
    for bad in ("..", "../../etc", "a/../b", "", "  ", ".", ".hidden", "a/b", "a\\b", "tab\there", "new\nline",
                "what?", "a:b", "checkpoint-3", "CON", "x" * 300):
        with pytest.raises(StudioError) as err:
            run_folder("tiny", "lora", bad)
        assert err.value.key == "bad_run_name"
    assert "'..'" in err.value.message() or "letters" in err.value.message()


def test_default_run_name():
    assert re.fullmatch(r"train_\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}", default_run_name())
    assert default_run_name("eval").startswith("eval_")


def test_list_runs_newest_first_with_their_details(studio_home: Path):
    saves = studio_home / "saves"
    old = make_run(saves, "tiny", "lora", "old", losses=(2.0, 1.5, 1.25), checkpoints=(2, 3),
                   started="2026-01-01T10:00:00+00:00")
    make_run(saves, "tiny", "full", "newer", state="failed", started="2026-02-01T10:00:00+00:00")
    fresh = make_run(saves, "qwen", "lora", "fresh", state=None)  # only a config: sorts by its file time
    os.utime(fresh / "config.yaml", (4e9, 4e9))
    demo = saves / "models" / "demo"
    demo.mkdir(parents=True)
    (demo / "config.yaml").write_text("built: true\n")  # a built model, not a run
    (saves / ".studio" / "settings").mkdir(parents=True)
    runs = list_runs()
    assert [r["name"] for r in runs] == ["fresh", "newer", "old"]
    first = runs[-1]
    assert first == {"path": str(old), "model": "tiny", "method": "lora", "name": "old", "kind": "train", "stage": "sft",
                     "state": "finished", "started_at": "2026-01-01T10:00:00+00:00", "current_steps": 3,
                     "total_steps": 3, "final_loss": 1.25, "checkpoints": ["checkpoint-2", "checkpoint-3"]}
    assert runs[0]["state"] == "new" and runs[0]["final_loss"] is None
    assert list_runs(saves / "nothing_here") == []


def test_runs_table_is_localized_and_row_aligned(studio_home: Path):
    saves = studio_home / "saves"
    make_run(saves, "tiny", "lora", "a", losses=(2.0, 1.23456), checkpoints=(2,), started="2026-03-04T05:06:07+00:00")
    make_run(saves, "tiny", "lora", "b", state="aborted", started="2026-03-05T05:06:07+00:00")
    table = runs_table(list_runs())
    assert list(table.columns) == ["Run", "Job", "Model", "Method", "Stage", "State", "Started", "Steps",
                                   "Last loss", "Checkpoints"]
    assert list(table["Run"]) == ["b", "a"] and list(table["State"]) == ["Aborted", "Finished"]
    assert table.iloc[1].tolist() == ["a", "Training", "tiny", "lora", "sft", "Finished", "2026-03-04 05:06", "2/2",
                                      1.2346, 1]
    assert runs_table([]).empty and len(runs_table([]).columns) == 10


def test_resume_config_continues_in_the_same_folder(studio_home: Path):
    saves = studio_home / "saves"
    run = make_run(saves, "tiny", "lora", "stopped", state="aborted", losses=(2.0,), checkpoints=(1,))
    config = resume_config(run)
    assert config["resume_from_checkpoint"] is True and config["output_dir"] == str(run)
    assert config["learning_rate"] == 0.001 and config["overwrite_output_dir"] is False
    empty = make_run(saves, "tiny", "lora", "no_checkpoint", state="failed")
    with pytest.raises(StudioError) as err:
        resume_config(empty)
    assert err.value.key == "nothing_to_resume" and str(empty) in err.value.message()
    with pytest.raises(StudioError) as err:
        resume_config(saves / "tiny")
    assert err.value.key == "not_a_run"


def test_delete_run_refuses_live_runs_and_foreign_paths(studio_home: Path, tmp_path_factory: pytest.TempPathFactory):
    saves = studio_home / "saves"
    keep = make_run(saves, "tiny", "lora", "keep")
    live = make_run(saves, "tiny", "lora", "live")
    make_live(live)
    with pytest.raises(StudioError) as err:
        delete_run(live)
    assert err.value.key == "run_is_live" and live.is_dir()
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "config.yaml").write_text("stage: sft\n")
    demo = saves / "models" / "demo"
    demo.mkdir(parents=True)
    (demo / "config.yaml").write_text("built: true\n")
    for path in (outside, saves, demo, saves / "tiny" / "lora" / ".." / "lora" / "keep"):
        with pytest.raises(StudioError) as err:
            delete_run(path)
        assert err.value.key == "run_outside_saves"
    with pytest.raises(StudioError) as err:
        delete_run(saves / "tiny")
    assert err.value.key == "not_a_run"
    assert outside.is_dir() and demo.is_dir() and keep.is_dir()


def test_delete_run_removes_the_folder_and_empty_parents(studio_home: Path):
    saves = studio_home / "saves"
    first = make_run(saves, "tiny", "lora", "one", checkpoints=(1,))
    second = make_run(saves, "tiny", "lora", "two")
    delete_run(first)
    assert not first.exists() and second.is_dir()
    delete_run(second)
    assert not (saves / "tiny").exists() and saves.is_dir()
    assert list_runs() == []


def test_overlay_losses_one_series_per_run(studio_home: Path):
    saves = studio_home / "saves"
    a = make_run(saves, "tiny", "lora", "a", losses=(2.0, 1.0))
    b = make_run(saves, "tiny", "lora", "b", losses=(3.0, 2.0, 1.0))
    same = make_run(saves, "tiny", "full", "a", losses=(4.0,))
    frame = overlay_losses([a, b])
    assert list(frame.columns) == ["step", "value", "series"]
    assert frame.groupby("series")["step"].apply(list).to_dict() == {"a": [1, 2], "b": [1, 2, 3]}
    assert set(overlay_losses([a, same])["series"]) == {"tiny/lora/a", "tiny/full/a"}
    assert overlay_losses([]).empty and overlay_losses([saves / "missing"]).empty


def test_list_adapters_names_runs_with_final_weights(studio_home: Path):
    saves = studio_home / "saves"
    older = make_run(saves, "Qwen2.5-0.5B", "lora", "older", weights="adapter_model.safetensors")
    newer = make_run(saves, "Qwen2.5-0.5B", "lora", "newer", weights="adapter_model.safetensors")
    os.utime(older / "adapter_model.safetensors", (1e9, 1e9))
    os.utime(newer / "adapter_model.safetensors", (2e9, 2e9))
    make_run(saves, "Qwen2.5-0.5B", "lora", "only_checkpoints", checkpoints=(5,))
    make_run(saves, "Qwen2.5-0.5B", "full", "full_run", weights="model.safetensors")
    assert list_adapters("Qwen/Qwen2.5-0.5B", "lora") == ["newer", "older"]
    assert list_adapters("Qwen2.5-0.5B", "full") == ["full_run"]
    assert list_adapters("other", "lora") == []


# --- names in any alphabet (one place names run folders)


def test_run_names_keep_their_alphabet_and_never_collide(studio_home: Path):
    saves = studio_home / "saves"
    assert run_folder("demo", "lora", "héllo wörld 你好") == saves / "demo" / "lora" / "héllo wörld 你好"
    names = ["测试运行", "实验一二", "a b", "a_b", "a-b", "Тест 1", "テスト", "\u00e9", "e\u0301", "run.1", "run_1"]
    folders = [run_folder("demo", "lora", name) for name in names]
    assert len(set(folders)) == len(folders) - 1  # only "é" spelled two ways is one name
    assert folders[7] == folders[8] and folders[8].name == "é"


def test_saved_settings_names_keep_their_alphabet(studio_home: Path):
    from studio.tabs.monitor import settings_path

    assert settings_path("我的设置").name == "我的设置.yaml"
    assert settings_path("a b") != settings_path("a_b")
    with pytest.raises(StudioError):
        settings_path("../x")


def test_an_existing_run_name_is_refused_in_the_words_of_the_page(studio_home: Path):
    from studio.config_builder import check_new_run

    run_dir = make_run(studio_home / "saves", "demo", "lora", "测试运行", losses=(1.0,), weights="adapter_model.safetensors")
    with pytest.raises(StudioError) as err:
        check_new_run({"output_dir": str(run_dir)}, run_dir)
    assert err.value.key == "run_name_taken"
    text = err.value.message("en")
    assert "测试运行" in text and "run name" in text and "All runs" in text
    assert text.index("All runs") < text.index("resume_from_checkpoint")  # the config key only as a hint
    check_new_run({"output_dir": str(run_dir), "resume_from_checkpoint": True}, run_dir)
    check_new_run({"output_dir": str(run_dir), "overwrite_output_dir": True}, run_dir)
    check_new_run({}, run_dir.parent / "fresh")


# --- job kinds: only training runs are offered where training runs belong


def make_job(saves: Path, name: str, task: str | None, result: str, *, method: str = "lora") -> Path:
    """An eval or export folder as the engine leaves it (`task` None: an older folder without the field)."""
    run_dir = saves / "tiny" / method / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model_name_or_path: org/tiny\nstage: sft\nfinetuning_type: lora\n")
    (run_dir / result).write_text("{}")
    extra = {"task": task} if task else {}
    write_status(run_dir, "finished", pid=1, exit_code=0, **extra)
    return run_dir


def test_each_folder_is_a_run_of_its_job_kind(studio_home: Path):
    from studio.runs import job_kind

    saves = studio_home / "saves"
    train = make_run(saves, "tiny", "lora", "train_1", weights="adapter_model.safetensors")
    evaluation = make_job(saves, "eval_1", "eval", "results.json")
    old_eval = make_job(saves, "eval_0", None, "generated_predictions.jsonl")
    export = make_job(saves, "export_1", "export", "model.safetensors")
    old_export = make_job(saves, "export_0", None, "export_results.json")
    assert [job_kind(d) for d in (train, evaluation, old_eval, export, old_export)] == [
        "train", "eval", "eval", "export", "export"]
    kinds = {run["name"]: run["kind"] for run in list_runs()}
    assert kinds == {"train_1": "train", "eval_1": "eval", "eval_0": "eval", "export_1": "export",
                     "export_0": "export"}
    assert [run["name"] for run in list_runs(kind="train")] == ["train_1"]
    table = runs_table(list_runs(), "en")
    assert sorted(table["Job"]) == ["Evaluation", "Evaluation", "Export", "Export", "Training"]


def test_continue_from_and_reward_models_offer_only_training_runs(studio_home: Path):
    from studio.runs import reward_model_runs

    saves = studio_home / "saves"
    make_run(saves, "tiny", "lora", "train_1", weights="adapter_model.safetensors")
    make_job(saves, "export_1", "export", "model.safetensors")
    make_job(saves, "export_0", None, "export_results.json").joinpath("adapter_model.safetensors").write_bytes(b"")
    assert list_adapters("tiny", "lora") == ["train_1"]
    rm_run = make_run(saves, "tiny", "lora", "rm_1", weights="adapter_model.safetensors")
    (rm_run / "config.yaml").write_text("model_name_or_path: org/tiny\nstage: rm\nfinetuning_type: lora\n")
    rm_eval = make_job(saves, "eval_rm", "eval", "results.json")
    (rm_eval / "config.yaml").write_text("model_name_or_path: org/tiny\nstage: rm\nfinetuning_type: lora\n")
    assert reward_model_runs() == [str(rm_run.resolve())]


def test_the_train_tab_reattaches_only_to_training_runs(studio_home: Path):
    from studio.tabs.monitor import reattach

    saves = studio_home / "saves"
    train = make_run(saves, "tiny", "lora", "train_1", started="2026-03-04T05:06:07+00:00")
    make_job(saves, "eval_1", "eval", "results.json")  # newer: its status was written now
    assert reattach("en")[0] == str(train.resolve())
    live_eval = make_job(saves, "eval_2", "eval", "results.json")
    make_live(live_eval)
    write_status(live_eval, "running", task="eval")
    assert reattach("en")[0] == str(train.resolve())
