"""The run folder contract: atomic status, dead-process detection, incremental log reading, lock, safe reuse."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.runfolder import (
    RunLock,
    TrainerLogWriter,
    is_locked,
    mark_running,
    read_status,
    read_trainer_log,
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
    (run / "checkpoint-4").mkdir()
    (run / "checkpoint-12").mkdir()
    _, resume = prepare_run_dir(load_config(None, [f"output_dir={run}", "resume_from_checkpoint=true"]))
    assert resume.endswith("checkpoint-12")
