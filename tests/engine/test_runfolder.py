"""The run folder contract: atomic status, dead-process detection, incremental log reading, lock, safe reuse."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.runfolder import (
    RunLock,
    TrainerLogWriter,
    has_results,
    is_locked,
    is_process_alive,
    list_checkpoints,
    mark_running,
    read_status,
    read_trainer_log,
    wait_for_state,
    write_status,
)
from engine.train.run import prepare_run_dir


def test_status_lifecycle(tmp_path: Path):
    status = mark_running(tmp_path)
    assert status["state"] == "running" and status["pid"] and status["started_at"]
    assert read_status(tmp_path)["state"] == "running"  # this test process is alive
    final = write_status(tmp_path, "finished", exit_code=0)
    assert final["started_at"] == status["started_at"] and final["ended_at"] and final["exit_code"] == 0
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed into place"


def test_dead_process_is_reported_failed_with_log_tail(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    mark_running(tmp_path, pid=proc.pid)
    (tmp_path / "running_log.txt").write_text("step 1\nRuntimeError: out of memory\n")
    status = read_status(tmp_path)
    assert status["state"] == "failed" and "out of memory" in status["error"]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed", "recorded for other readers"


def test_reused_pid_is_not_mistaken_for_the_run(tmp_path: Path):
    mark_running(tmp_path)
    data = json.loads((tmp_path / "status.json").read_text())
    data["pid_start_time"] = "1"  # same pid, different process start
    (tmp_path / "status.json").write_text(json.dumps(data))
    assert read_status(tmp_path, reconcile=False)["state"] == "failed"


def test_log_reader_is_incremental_and_skips_junk(tmp_path: Path):
    writer = TrainerLogWriter(tmp_path)
    writer.write({"current_steps": 1, "loss": 2.0})
    records, offset = read_trainer_log(tmp_path)
    assert [r["current_steps"] for r in records] == [1]
    with open(tmp_path / "trainer_log.jsonl", "a") as f:
        f.write("not json\n")
        f.write('{"current_steps": 2, "loss": 1.5}\n{"current_steps": 3')  # a line still being written
    records, offset = read_trainer_log(tmp_path, offset)
    assert [r["current_steps"] for r in records] == [2]
    with open(tmp_path / "trainer_log.jsonl", "a") as f:
        f.write(', "loss": 1.0}\n')
    records, _ = read_trainer_log(tmp_path, offset)
    assert [r["current_steps"] for r in records] == [3]


def test_truncate_after_resumed_step(tmp_path: Path):
    writer = TrainerLogWriter(tmp_path)
    for step in (5, 10, 15):
        writer.write({"current_steps": step, "loss": 1.0})
    writer.truncate_after(10)
    assert [r["current_steps"] for r in read_trainer_log(tmp_path)[0]] == [5, 10]


def test_lock_refuses_a_second_writer(tmp_path: Path):
    with RunLock(tmp_path):
        assert is_locked(tmp_path)
        code = ("from engine.runfolder import RunLock; from engine.errors import ConfigError\n"
                f"try:\n    RunLock({str(tmp_path)!r}).acquire()\nexcept ConfigError as e:\n    print(e.key)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        assert out == "run_locked"
    assert not is_locked(tmp_path)


def test_results_are_never_overwritten_unless_asked(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("stage: sft\n")
    prepare_run_dir(load_config(None, [f"output_dir={run}"]))  # a fresh run folder is fine
    (run / "trainer_log.jsonl").write_text('{"current_steps": 1}\n')
    with pytest.raises(ConfigError) as info:
        prepare_run_dir(load_config(None, [f"output_dir={run}"]))
    assert info.value.key == "run_dir_has_results"
    prepare_run_dir(load_config(None, [f"output_dir={run}", "overwrite_output_dir=true"]))
    with pytest.raises(ConfigError) as info:
        prepare_run_dir(load_config(None, [f"output_dir={run}", "resume_from_checkpoint=true"]))
    assert info.value.key == "no_checkpoint_to_resume"
    for step in (4, 12):
        (run / f"checkpoint-{step}").mkdir()
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    _, resume = prepare_run_dir(load_config(None, [f"output_dir={run}", "resume_from_checkpoint=true"]))
    assert resume.endswith("checkpoint-12")


# ---------------------------------------------------------------- checkpoints: only complete ones are offered


def test_only_complete_checkpoints_are_listed_and_resumed(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoint-4").mkdir(parents=True)
    (run / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4}')
    (run / "checkpoint-8").mkdir()  # a crash mid-save: weights, no trainer_state.json (the Trainer writes it last)
    (run / "checkpoint-8" / "adapter_model.safetensors").write_bytes(b"half")
    (run / "checkpoint-12").mkdir()  # cut short while writing the state itself
    (run / "checkpoint-12" / "trainer_state.json").write_text('{"global_st')
    (run / "checkpoint-16").mkdir()  # PPO's own layout: ppo_state.json last
    (run / "checkpoint-16" / "ppo_state.json").write_text('{"step": 16}')
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-4", "checkpoint-16"]
    assert [p.name for p in list_checkpoints(run, complete_only=False)] == [
        "checkpoint-4", "checkpoint-8", "checkpoint-12", "checkpoint-16"]
    shutil.rmtree(run / "checkpoint-16")
    _, resume = prepare_run_dir(load_config(None, [f"output_dir={run}", "resume_from_checkpoint=true"]))
    assert resume.endswith("checkpoint-4")
    assert has_results(run), "incomplete checkpoints are still another run's files: never silently reused"
    with pytest.raises(ConfigError) as info:
        prepare_run_dir(load_config(None, [f"output_dir={run}", f"resume_from_checkpoint={run / 'checkpoint-8'}"]))
    assert info.value.key == "checkpoint_incomplete" and "not completely written" in info.value.message()


def test_only_incomplete_checkpoints_cannot_be_resumed(tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoint-8").mkdir(parents=True)
    with pytest.raises(ConfigError) as info:
        prepare_run_dir(load_config(None, [f"output_dir={run}", "resume_from_checkpoint=true"]))
    assert info.value.key == "no_checkpoint_to_resume"


# ---------------------------------------------------------------- a process that died without a final state


@pytest.mark.parametrize(("log", "expected"), [
    ("step 1\nKilled\n", "was killed"),
    ("step 1\n[12345.6] Out of memory: Killed process 4242 (python)\n", "out-of-memory killer"),
    ("step 1\nRuntimeError: boom\n", "RuntimeError: boom"),
])
def test_a_dead_run_says_it_ended_without_a_final_status(log: str, expected: str, tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    mark_running(tmp_path, pid=proc.pid)
    (tmp_path / "running_log.txt").write_text(log)
    error = read_status(tmp_path)["error"]
    assert "ended without a final status" in error and expected in error


# ---------------------------------------------------------------- status files of any shape


MALFORMED = {
    "pid_string": {"state": "running", "pid": "1234"},
    "pid_list": {"state": "running", "pid": [1, 2]},
    "pid_float": {"state": "running", "pid": 1.5},
    "pid_huge": {"state": "running", "pid": 10**40},
    "pid_negative": {"state": "running", "pid": -1},
    "pid_bool": {"state": "running", "pid": True},
    "pid_dict": {"state": "running", "pid": {"a": 1}},
    "state_number": {"state": 3, "pid": 1},
    "state_list": {"state": ["running"]},
    "state_unknown_word": {"state": "exploded"},
    "start_time_list": {"state": "running", "pid": os.getpid(), "pid_start_time": [1]},
    "start_time_number": {"state": "running", "pid": os.getpid(), "pid_start_time": 12.5},
    "launcher_pid_string": {"state": "running", "pid": None, "launcher_pid": "x", "launcher_start_time": {}},
    "launcher_pid_huge": {"state": "finished", "launcher_pid": -(10**40)},
    "error_not_text": {"state": "failed", "error": {"nested": [1]}},
}
RAW = {"array": b"[1, 2]", "number": b"42", "null": b"null", "garbage": b"\xff\xfe\x00\x9c garbage",
       "empty": b"", "truncated": b'{"state": "runn', "string": b'"running"'}


@pytest.mark.parametrize("content", [json.dumps(v).encode() for v in MALFORMED.values()] + list(RAW.values()),
                         ids=[*MALFORMED, *RAW])
def test_a_status_file_of_any_shape_never_breaks_readers(content: bytes, tmp_path: Path):
    (tmp_path / "status.json").write_bytes(content)
    status = read_status(tmp_path)
    assert isinstance(status, dict) and status["state"] in ("unknown", "running", "finished", "failed", "aborted")
    for key in ("pid", "launcher_pid"):
        assert status.get(key) is None or type(status[key]) is int and 0 < status[key] < 2**32, key
    for key in ("pid_start_time", "launcher_start_time", "error"):
        assert status.get(key) is None or isinstance(status[key], str), key
    if status["state"] == "running":
        assert status["pid"] == os.getpid(), "only a live, well-formed pid keeps a run `running`"
    assert wait_for_state(tmp_path, timeout=0)["state"] == status["state"]
    write_status(tmp_path, "finished", exit_code=0)  # a writer after a reader still works
    assert read_status(tmp_path)["state"] == "finished"


@pytest.mark.parametrize("pid", ["1", [1], 1.5, 10**40, -1, 0, True, None, {}])
def test_process_checks_take_any_value(pid: Any):
    assert is_process_alive(pid) is False
