"""The runner: refusals happen before anything is written; real runs finish, abort, resume and die as the UI expects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StudioError
from engine.runfolder import is_process_alive, process_start_time, read_status, read_trainer_log, write_status
from studio.monitor import RunMonitor, RunView
from studio.queue import cancel
from studio.runner import abort_run, find_live_runs, start_run
from studio.runs import resume_config, run_folder


def tiny_config(model_dir: Path, **extra: Any) -> dict[str, Any]:
    """A LoRA SFT config on the tiny model that trains about ten steps a second on CPU."""
    return {"model_name_or_path": str(model_dir), "template": "chatml", "stage": "sft", "do_train": True,
            "dataset": "identity", "finetuning_type": "lora", "lora_rank": 4, "per_device_train_batch_size": 2,
            "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3, "cutoff_len": 96, "seed": 3, **extra}


@pytest.fixture()
def started() -> Iterator[list[int]]:
    """Pids of processes a test started; whatever is still alive at the end is killed with its group."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if is_process_alive(pid):
            os.killpg(pid, signal.SIGKILL)


def wait_for(monitor: RunMonitor, run_dir: Path, done: Callable[[RunView], bool], timeout: float = 120) -> RunView:
    deadline = time.monotonic() + timeout
    while True:
        view = monitor.poll(run_dir)
        if done(view):
            return view
        assert time.monotonic() < deadline, f"timed out; last view: {view.state} {view.log_tail[-2000:]}"
        time.sleep(0.1)


def fake_live_run(run_dir: Path, pid: int) -> None:
    """A status.json saying `pid` runs the folder (with its real start time, so it counts as alive)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_status(run_dir, "running", pid=pid, pid_start_time=process_start_time(pid))


def spawn(code: str, started: list[int]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    started.append(proc.pid)
    return proc


def test_runner_monitor_and_runs_leave_heavy_libraries_out():
    code = "import sys, studio.runner, studio.monitor, studio.runs; print(' '.join(sys.modules))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert not {"torch", "transformers", "peft", "trl", "datasets", "gradio"} & loaded


# --- refusals: nothing is spawned, nothing is written ---

def test_invalid_config_is_refused_before_anything_is_written(studio_home: Path, tiny_model_dir: Path):
    run_dir = run_folder("tiny", "lora", "bad")
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, learning_rate=-1.0, max_steps=2), run_dir)
    assert err.value.key == "too_small" and "learning_rate" in err.value.message()
    assert not run_dir.exists()
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, zqxv_wkjp=1), run_dir)
    assert err.value.key == "unknown_key_no_match" and not run_dir.exists()


@pytest.mark.parametrize("where", ["outside", "dotdot", "saves_itself"])
def test_output_dir_must_be_inside_saves(where: str, studio_home: Path, tiny_model_dir: Path, tmp_path_factory):
    run_dir = {"outside": tmp_path_factory.mktemp("elsewhere") / "run",
               "dotdot": studio_home / "saves" / "tiny" / ".." / ".." / "escaped",
               "saves_itself": studio_home / "saves"}[where]
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, max_steps=2), run_dir)
    assert err.value.key == "output_dir_outside_saves"
    assert "saves" in err.value.message()
    assert not (run_dir / "config.yaml").exists() and not (studio_home / "escaped").exists()


def test_results_are_not_overwritten(studio_home: Path, tiny_model_dir: Path):
    run_dir = run_folder("tiny", "lora", "done")
    run_dir.mkdir(parents=True)
    (run_dir / "trainer_log.jsonl").write_text('{"current_steps": 1, "loss": 1.0}\n')
    (run_dir / "config.yaml").write_text("old: true\n")
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, max_steps=2), run_dir)
    assert err.value.key == "run_dir_has_results"
    with pytest.raises(StudioError) as err:  # asking to resume a run that never saved a checkpoint
        start_run(tiny_config(tiny_model_dir, max_steps=2, resume_from_checkpoint=True), run_dir)
    assert err.value.key == "no_checkpoint_to_resume"
    assert (run_dir / "config.yaml").read_text() == "old: true\n"
    assert not (run_dir / "status.json").exists()


def test_a_live_run_anywhere_queues_a_new_start(studio_home: Path, tiny_model_dir: Path):
    live = studio_home / "saves" / "other" / "full" / "busy"
    fake_live_run(live, os.getpid())  # this test process stands in for a training process
    assert find_live_runs() == [live]
    second = run_folder("tiny", "lora", "second")
    answer = start_run(tiny_config(tiny_model_dir, max_steps=2), second)
    assert answer["state"] == "queued" and answer["position"] == 1
    assert (second / "config.yaml").is_file() and not (second / "status.json").exists()


def test_dead_or_reused_pids_are_not_live_and_never_signalled(studio_home: Path):
    dead = studio_home / "saves" / "m" / "lora" / "dead"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    fake_live_run(dead, os.getpid())
    write_status(dead, "running", pid=proc.pid, pid_start_time="1")
    reused = studio_home / "saves" / "m" / "lora" / "reused"
    fake_live_run(reused, os.getpid())
    write_status(reused, "running", pid_start_time="1")  # our pid, but not the process that started the run
    assert find_live_runs() == []
    assert abort_run(reused, grace=0) is False and abort_run(dead, grace=0) is False
    assert read_status(reused)["state"] == "failed"
    assert abort_run(studio_home / "saves" / "m" / "lora" / "never_started") is False


# --- abort and its SIGKILL fallback, on stand-in processes ---

def wait_state(run_dir: Path, timeout: float = 15) -> dict:
    """status.json as written (not as read_status would reconcile it) once it leaves `running`."""
    deadline = time.monotonic() + timeout
    while True:
        status = json.loads((run_dir / "status.json").read_text())
        if status["state"] != "running" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_abort_before_training_began_ends_as_aborted(studio_home: Path, started: list[int]):
    run_dir = studio_home / "saves" / "m" / "lora" / "early"
    proc = spawn("import time; time.sleep(60)", started)
    fake_live_run(run_dir, proc.pid)
    assert abort_run(run_dir, grace=10) is True
    assert proc.wait(timeout=10) == -signal.SIGTERM
    status = wait_state(run_dir)
    assert status["state"] == "aborted" and "before training began" in status["error"]


def test_a_run_that_ignores_sigterm_is_killed_with_its_children(studio_home: Path, started: list[int]):
    run_dir = studio_home / "saves" / "m" / "lora" / "stubborn"
    # A launcher that ignores SIGTERM and has a child in a session of its own, as torchrun's ranks are.
    code = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "c = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'], start_new_session=True); "
            "print(c.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True)
    started.append(proc.pid)
    grandchild = int(proc.stdout.readline())
    started.append(grandchild)
    fake_live_run(run_dir, proc.pid)
    assert abort_run(run_dir, grace=0.5) is True
    assert proc.wait(timeout=15) == -signal.SIGKILL
    status = wait_state(run_dir)
    assert status["state"] == "aborted" and "killed" in status["error"]
    deadline = time.monotonic() + 5
    while is_process_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_process_alive(grandchild), "the launcher's child must not be left behind"


# --- real training processes ---

def assert_reaped(pid: int) -> None:
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the child is reaped, not left as a zombie"


@pytest.mark.slow
def test_abort_keeps_a_checkpoint_then_the_resumed_run_finishes(studio_home: Path, tiny_model_dir: Path,
                                                                started: list[int]):
    # One test for the whole life of a run: each engine start costs seconds of imports.
    run_dir = run_folder("tiny", "lora", "long")
    status = start_run(tiny_config(tiny_model_dir, max_steps=400), run_dir)
    started.append(status["pid"])
    assert status["state"] == "running" and (run_dir / "config.yaml").is_file()
    monitor = RunMonitor()
    assert monitor.poll(run_dir).state == "running"
    wait_for(monitor, run_dir, lambda v: v.current_steps >= 1 or v.state != "running")
    second = start_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "second"))
    assert second["state"] == "queued" and second["position"] == 1
    cancel(second["entry"]["id"])
    assert abort_run(run_dir) is True
    view = wait_for(monitor, run_dir, lambda v: v.state != "running")
    assert view.state == "aborted", view.log_tail
    assert view.checkpoint and Path(view.checkpoint).is_dir() and Path(view.checkpoint).parent == run_dir
    assert view.message_key == "monitor.aborted_checkpoint" and view.message_params["path"] == view.checkpoint
    assert abort_run(run_dir) is False
    assert_reaped(status["pid"])

    stopped_at = int(Path(view.checkpoint).name.split("-")[1])
    status = start_run({**resume_config(run_dir), "max_steps": stopped_at + 2}, run_dir)
    started.append(status["pid"])
    view = wait_for(monitor, run_dir, lambda v: v.state != "running")
    assert view.state == "finished", view.log_tail
    total = stopped_at + 2
    assert (view.current_steps, view.total_steps, view.percentage) == (total, total, 100.0)
    steps = [r["current_steps"] for r in read_trainer_log(run_dir)[0]]
    assert steps == list(range(1, total + 1)), "the resumed run continues the step count"
    assert set(view.loss["series"]) == {"loss", "smoothed"} and len(view.loss) == 2 * total
    assert {"lr", "grad_norm"} <= set(view.metrics["series"])
    assert view.message_key == "monitor.finished" and "train_loss" in view.results
    log = (run_dir / "running_log.txt").read_text()
    assert log.count("Rank 0 of 1") == 2, "both runs append their output to the log once (no tee on top)"
    assert_reaped(status["pid"])
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, max_steps=6), run_dir)
    assert err.value.key == "run_dir_has_results"


@pytest.mark.slow
def test_a_killed_run_reads_as_failed_with_its_log(studio_home: Path, tiny_model_dir: Path, started: list[int]):
    run_dir = run_folder("tiny", "lora", "killed")
    pid = start_run(tiny_config(tiny_model_dir, max_steps=400), run_dir)["pid"]
    started.append(pid)
    monitor = RunMonitor()
    wait_for(monitor, run_dir, lambda v: v.current_steps >= 1 or v.state != "running")
    os.killpg(pid, signal.SIGKILL)
    view = wait_for(monitor, run_dir, lambda v: v.state != "running", timeout=15)
    assert view.state == "failed" and "without a final status" in view.error
    assert view.message_key == "monitor.failed" and "Rank 0 of 1" in view.log_tail
    assert read_status(run_dir, reconcile=False)["state"] == "failed", "the reconciled state is recorded"
