"""Sending a run to a Ray cluster by address: the address check, the job's command, and (with `ray` installed) a
real job on a local head with its dashboard: it trains into the run folder, and a stop aborts it."""

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
import yaml

from engine.errors import StudioError
from engine.runfolder import read_trainer_log, wait_for_state
from studio import ray_jobs

ROOT = Path(__file__).resolve().parent.parent.parent


def _has_ray_dashboard() -> bool:
    try:
        import ray.dashboard  # noqa: F401  (ray[default])
        from ray.job_submission import JobSubmissionClient  # noqa: F401
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_addresses_become_dashboard_urls():
    assert ray_jobs.dashboard_url("head") == "http://head:8265"
    assert ray_jobs.dashboard_url("10.0.0.5:9000") == "http://10.0.0.5:9000"
    assert ray_jobs.dashboard_url(" https://ray.example.org:443/ ") == "https://ray.example.org:443"


def test_an_address_that_does_not_answer_is_refused_before_anything_runs(tmp_path: Path):
    port = free_port()  # nothing listens there
    with pytest.raises(StudioError) as info:
        ray_jobs.submit_ray_job(tmp_path / "config.yaml", tmp_path / "run", f"127.0.0.1:{port}")
    assert info.value.key == "ray_unreachable" and f"127.0.0.1:{port}" in info.value.message()
    assert not (tmp_path / "run").exists()


def test_the_job_runs_the_engine_on_the_config_into_the_run_folder(tmp_path: Path):
    command = ray_jobs.entrypoint(tmp_path / "my config.yaml", tmp_path / "run", workdir=tmp_path)
    assert command == (f"cd {tmp_path} && python -m engine train '{tmp_path / 'my config.yaml'}' "
                       f"output_dir={tmp_path / 'run'}")
    assert ray_jobs.status(tmp_path) is None and ray_jobs.stop(tmp_path) is False  # a local run: no job


def test_the_studio_imports_ray_only_when_a_job_is_sent():
    code = "import sys, studio.ray_jobs; print('ray' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.fixture()
def ray_head(tmp_path: Path):
    """A Ray head with its dashboard on 127.0.0.1, in a session of its own, stopped afterwards."""
    if not _has_ray_dashboard():
        pytest.skip("ray[default] is not installed (no dashboard, so no job submission): pip install -e \".[ray]\"")
    port, dashboard = free_port(), free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    head = subprocess.Popen([str(Path(venv_bin) / "ray"), "start", "--head", "--block", "--port", str(port),
                             "--node-ip-address", "127.0.0.1", "--include-dashboard", "true",
                             "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                             "--disable-usage-stats", "--num-cpus", "2"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            assert head.poll() is None, "ray start --head exited"
            try:
                if httpx.get(f"http://127.0.0.1:{dashboard}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Ray dashboard did not answer in time"
            time.sleep(0.5)
        yield f"127.0.0.1:{dashboard}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _config(tmp_path: Path, model_dir: Path, **extra: object) -> Path:
    config = {"model_name_or_path": str(model_dir), "dataset": "identity", "dataset_dir": str(ROOT / "data"),
              "finetuning_type": "lora", "lora_rank": 4, "per_device_train_batch_size": 2, "logging_steps": 1,
              "save_steps": 1000, "learning_rate": 1e-3, "cutoff_len": 96, "ray_num_workers": 2,
              "ray_storage_path": str(tmp_path / "ray"), **extra}
    path = tmp_path / f"config_{len(list(tmp_path.glob('config_*')))}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _wait_for_job(run_dir: Path, states: set[str], timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while (state := ray_jobs.status(run_dir)) not in states:
        assert time.monotonic() < deadline, f"the Ray job is still {state}"
        time.sleep(1)
    return state


@pytest.mark.slow
def test_a_job_sent_to_a_ray_cluster_trains_and_stops(ray_head: str, tiny_model_dir: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    sent = ray_jobs.submit_ray_job(_config(tmp_path, tiny_model_dir, max_samples=16, num_train_epochs=1),
                                   run_dir, ray_head)
    assert sent["job_id"] and json.loads((run_dir / ray_jobs.JOB_FILE).read_text())["job_id"] == sent["job_id"]
    state = _wait_for_job(run_dir, {"SUCCEEDED", "FAILED", "STOPPED"})
    assert state == "SUCCEEDED", ray_jobs._client(ray_head).get_job_logs(sent["job_id"])[-4000:]
    assert wait_for_state(run_dir)["state"] == "finished"
    assert [r["current_steps"] for r in read_trainer_log(run_dir)[0]] == [1, 2, 3, 4]
    log = (run_dir / "running_log.txt").read_text(encoding="utf-8")
    assert "Rank 0 of 2" in log and "Rank 1 of 2" in log

    long_run = tmp_path / "long"
    ray_jobs.submit_ray_job(_config(tmp_path, tiny_model_dir, max_steps=2000), long_run, ray_head)
    deadline = time.monotonic() + 240
    while len(read_trainer_log(long_run)[0]) < 3:
        assert ray_jobs.status(long_run) in ("PENDING", "RUNNING"), (long_run / "running_log.txt").read_text()
        assert time.monotonic() < deadline, "the job did not log three steps in time"
        time.sleep(0.5)
    assert ray_jobs.stop(long_run)
    assert _wait_for_job(long_run, {"SUCCEEDED", "FAILED", "STOPPED"}) == "STOPPED"
    status = wait_for_state(long_run)
    assert status["state"] == "aborted" and status.get("checkpoint"), status


def test_start_with_a_ray_address_sends_the_run_and_abort_stops_it(studio_home: Path, monkeypatch: pytest.MonkeyPatch):
    from studio.tabs import monitor
    from studio.tabs.train import FORM_FIELDS
    from tests.studio.test_config_builder import form

    sent, stopped = [], []
    monkeypatch.setattr(ray_jobs, "submit_ray_job", lambda config_path, run_dir, address: sent.append(
        (Path(config_path), Path(run_dir), address)) or {"job_id": "raysubmit_1", "address": address})
    values = form(ray_address="http://head:8265", run_name="on_ray")
    message, status, run_dir, _ = monitor.start_training("en", *(values[name] for name in FORM_FIELDS))
    assert message == "" and "raysubmit_1" in status
    ((config_path, folder, address),) = sent
    assert address == "http://head:8265" and str(folder) == run_dir and config_path.is_file()
    assert "ray_address" not in yaml.safe_load(config_path.read_text())  # a studio field, not an engine key
    (folder / "ray_job.json").write_text(json.dumps({"address": address, "job_id": "raysubmit_1"}))
    monkeypatch.setattr(ray_jobs, "stop", lambda run: stopped.append(Path(run)) or True)
    assert monitor.abort_training(run_dir, "en") and stopped == [folder]


def test_the_public_demo_never_connects_to_a_typed_ray_address(studio_home: Path, monkeypatch: pytest.MonkeyPatch):
    from studio import demo_mode
    from studio.tabs import monitor
    from studio.tabs.train import FORM_FIELDS
    from tests.studio.test_config_builder import form

    monkeypatch.setattr(demo_mode, "active", lambda: object())
    monkeypatch.setattr(ray_jobs, "submit_ray_job", lambda *a: pytest.fail("the demo sent a job"))
    values = form(ray_address="http://169.254.169.254:8265")
    message, *_ = monitor.start_training("en", *(values[name] for name in FORM_FIELDS))
    assert message.startswith("❌")
