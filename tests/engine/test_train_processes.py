"""What needs real processes: SIGTERM abort then resume, DDP with two gloo ranks, and the CLI's error output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import load_config
from engine.runfolder import list_checkpoints, read_trainer_log, wait_for_state
from engine.train.run import run_training
from engine.validation import validate_config

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = pytest.mark.slow


def engine_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine", *args]


def base_overrides(model_dir: Path, out: Path) -> list[str]:
    return [f"model_name_or_path={model_dir}", f"output_dir={out}", "dataset=identity", "finetuning_type=lora",
            "lora_rank=4", "per_device_train_batch_size=2", "logging_steps=1", "save_steps=1000",
            "learning_rate=1e-3", "cutoff_len=96", "seed=3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_saves_a_checkpoint_then_resume_continues(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen(engine_command("train", *base_overrides(tiny_model_dir, out), "max_steps=400"),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while len(read_trainer_log(out)[0]) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "training did not log three steps in time"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    status = wait_for_state(out)
    assert status["state"] == "aborted"
    checkpoints = list_checkpoints(out)
    assert checkpoints and status["checkpoint"] == str(checkpoints[-1])
    stopped_at = int(checkpoints[-1].name.split("-")[1])
    assert 3 <= stopped_at < 400

    config = validate_config(load_config(None, [*base_overrides(tiny_model_dir, out), f"max_steps={stopped_at + 3}",
                                                "resume_from_checkpoint=true"]))
    assert run_training(config) == 0
    steps = [r["current_steps"] for r in read_trainer_log(out)[0]]
    assert steps == list(range(1, stopped_at + 4)), "the resumed run continues the step count without gaps"
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


def test_ddp_two_gloo_ranks(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "ddp"
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(engine_command("train", *base_overrides(tiny_model_dir, out), "max_samples=16",
                                           "num_train_epochs=1"),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Rank 0 of 2" in output and "Rank 1 of 2" in output, "both ranks train"
    records = read_trainer_log(out)[0]
    steps = [r["current_steps"] for r in records]
    # 16 rows, 2 per device, 2 devices: 4 optimiser steps per epoch, each logged once (rank 0 only).
    assert steps == [1, 2, 3, 4] and records[-1]["total_steps"] == 4
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


@pytest.mark.parametrize(("setup", "overrides", "expected"), [
    ("broken_json", ["dataset=broken"], "line"),
    ("empty_file", ["dataset=empty"], "empty"),
    (None, ["dataset=no_such_set"], "Known datasets"),
    (None, ["lora_target=not_a_module"], "not_a_module"),
])
def test_cli_reports_bad_input_without_traceback(setup: str | None, overrides: list[str], expected: str,
                                                 tiny_model_dir: Path, tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dataset_info.json").write_text(json.dumps({
        "identity": {"file_name": str(ROOT / "data" / "identity.json")},
        "broken": {"file_name": "broken.json"}, "empty": {"file_name": "empty.json"}}))
    (data_dir / "broken.json").write_text('[{"instruction": "hi", "output": "hello"},\n {"instruction": ')
    (data_dir / "empty.json").write_text("")
    (data_dir / "identity.json").write_text((ROOT / "data" / "identity.json").read_text(encoding="utf-8"))
    registry = json.loads((data_dir / "dataset_info.json").read_text())
    registry["identity"] = {"file_name": "identity.json"}
    (data_dir / "dataset_info.json").write_text(json.dumps(registry))
    args = [*base_overrides(tiny_model_dir, tmp_path / "run"), f"dataset_dir={data_dir}", "max_steps=2", *overrides]
    result = subprocess.run(engine_command("train", *args), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert expected in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / "run" / "trainer_log.jsonl").exists(), "nothing trained"
