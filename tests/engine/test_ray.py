"""Training on Ray workers (USE_RAY=1): two local workers train one run, a stop aborts it, a dead address is refused.

The slow tests start their own Ray head on 127.0.0.1 (the driver does, in a session of its own) and need the `ray`
extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, StudioError
from engine.runfolder import list_checkpoints, read_trainer_log, wait_for_state
from engine.train import ray_train

ROOT = Path(__file__).resolve().parent.parent.parent


def _has_ray() -> bool:
    try:
        import ray.train.torch  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _has_ray(), reason="ray is not installed: pip install -e \".[ray]\"")


def ray_command(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "engine", "train", f"model_name_or_path={model_dir}", f"output_dir={out}",
            "dataset=identity", "finetuning_type=lora", "lora_rank=4", "per_device_train_batch_size=2",
            "logging_steps=1", "save_steps=1000", "learning_rate=1e-3", "cutoff_len=96", "seed=3",
            "ray_num_workers=2", f"ray_storage_path={out.parent / 'ray'}", *extra]


def ray_env() -> dict[str, str]:
    return {**os.environ, "USE_RAY": "1", "OMP_NUM_THREADS": "1"}


def worker_pids(run_dir: Path) -> set[int]:
    text = (run_dir / "running_log.txt").read_text(encoding="utf-8", errors="replace")
    return {int(pid) for pid in re.findall(r"\(RayTrainWorker pid=(\d+)", text)}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_missing_ray_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(StudioError) as info:
        ray_train.import_ray()
    assert info.value.key == "package_not_installed" and '".[ray]"' in info.value.message()


def test_workers_ask_for_what_the_cluster_has():
    config = load_config(None, {"ray_num_workers": 4})
    assert ray_train.worker_resources(config, {"CPU": 8.0}) == {"CPU": 1.0}
    assert ray_train.worker_resources(config, {"CPU": 8.0, "GPU": 4.0}) == {"GPU": 1.0}
    config.training.resources_per_worker = {"CPU": 2, "GPU": 1}
    assert ray_train.worker_resources(config, {}) == {"CPU": 2.0, "GPU": 1.0}
    with pytest.raises(ConfigError) as info:
        ray_train.check_resources(config, {"CPU": 1.0}, {"CPU": 2.0})
    assert "needs 4 CPU in all, but the Ray cluster has 2 CPU" in info.value.message()


def test_a_dead_address_is_refused_before_anything_runs(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    command = ray_command(tiny_model_dir, out, "ray_init_kwargs={address: '127.0.0.1:9'}")
    result = subprocess.run(command, cwd=ROOT, env=ray_env(), capture_output=True, text=True, timeout=120)
    if not _has_ray():
        assert result.returncode == 1 and '".[ray]"' in result.stderr
        return
    assert result.returncode == 1, result.stderr[-2000:]
    assert "No Ray cluster answers at 127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@needs_ray
@pytest.mark.slow
def test_two_ray_workers_train_one_run(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = subprocess.run(ray_command(tiny_model_dir, out, "max_samples=16", "num_train_epochs=1"),
                            cwd=ROOT, env=ray_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    log = (out / "running_log.txt").read_text(encoding="utf-8")
    assert "Rank 0 of 2" in log and "Rank 1 of 2" in log, "both workers train"
    records = read_trainer_log(out)[0]
    # 16 rows, 2 per worker, 2 workers: 4 optimiser steps, each logged once (by rank 0 only).
    assert [r["current_steps"] for r in records] == [1, 2, 3, 4] and records[-1]["total_steps"] == 4
    assert (out / "adapter_model.safetensors").is_file()
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished" and status["task"] == "train"
    assert not (out / ray_train.STOP_FILE).exists()


@needs_ray
@pytest.mark.slow
def test_sigterm_to_the_driver_aborts_the_ray_run(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    proc = subprocess.Popen(ray_command(tiny_model_dir, out, "max_steps=2000"), cwd=ROOT, env=ray_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 240
    while len(read_trainer_log(out)[0]) < 3:
        assert proc.poll() is None, proc.stderr.read()[-4000:]
        assert time.monotonic() < deadline, "the Ray workers did not log three steps in time"
        time.sleep(0.2)
    while len(worker_pids(out)) < 2:  # Ray forwards each worker's log lines on its own schedule
        assert time.monotonic() < deadline, "both Ray workers should log before the run is stopped"
        time.sleep(0.2)
    workers = worker_pids(out)
    os.killpg(proc.pid, signal.SIGTERM)  # as the studio stops a run: the driver's whole process group
    assert proc.wait(timeout=120) == 0
    status = wait_for_state(out)
    assert status["state"] == "aborted", status
    checkpoints = list_checkpoints(out)
    assert checkpoints and status["checkpoint"] == str(checkpoints[-1])
    assert int(checkpoints[-1].name.split("-")[1]) < 2000
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(alive(pid) for pid in workers), "the Ray workers end with the run"
