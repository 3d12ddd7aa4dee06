"""The job queue: a busy machine queues a start, an ended job lets the next one start, the files survive a restart,
entries move and cancel, a config broken while it waited is refused without stopping the queue, and devices
(CPU slots, GPU indices) are shared out without overlap."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import studio.queue
from engine.errors import StudioError
from engine.runfolder import is_process_alive, mark_running, read_status, wait_for_state, write_status
from studio import capabilities, supervisor
from studio.queue import cancel, dispatch, enqueue_run, list_queue, move, position_and_expected_start
from studio.runner import abort_run, start_run
from studio.runs import list_runs, run_folder
from tests.studio.test_runner import fake_live_run, tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def fake_jobs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Launches replaced by a sleeping process that records its environment; the data check by a pass. Every
    process started is killed at the end."""
    launched: list[dict[str, Any]] = []

    def launch(cfg, run_dir, command, lang, base, env):  # noqa: ANN001 - the queue's launch signature
        run_dir.mkdir(parents=True, exist_ok=True)
        child = supervisor.spawn([sys.executable, "-c", "import time; time.sleep(60)"], cwd=base,
                                 log=run_dir / "running_log.txt", env=env)
        launched.append({"run_dir": run_dir, "env": env, "pid": child["pid"]})
        return mark_running(run_dir, pid=child["pid"], task=command)

    monkeypatch.setattr(studio.queue, "launch", launch)
    monkeypatch.setattr(studio.queue, "_run_check", lambda *args: {})
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("STUDIO_MAX_CPU_JOBS", raising=False)
    yield launched
    for job in launched:
        if is_process_alive(job["pid"]):
            os.killpg(job["pid"], signal.SIGKILL)


def _finish(job: dict[str, Any]) -> None:
    """The fake job ends: its process stops and its folder says finished."""
    os.killpg(job["pid"], signal.SIGKILL)
    for _ in range(100):
        if not is_process_alive(job["pid"]):
            break
        time.sleep(0.05)
    write_status(job["run_dir"], "finished", exit_code=0)


def _busy(studio_home: Path) -> Path:
    """A live run the queue did not start (this test process stands in for it)."""
    live = studio_home / "saves" / "other" / "full" / "busy"
    fake_live_run(live, os.getpid())
    return live


def test_a_busy_machine_queues_and_an_ended_job_lets_the_next_start(studio_home, tiny_model_dir, fake_jobs):
    first, second = run_folder("tiny", "lora", "first"), run_folder("tiny", "lora", "second")
    assert start_run(tiny_config(tiny_model_dir, max_steps=2), first)["state"] == "running"
    answer = start_run(tiny_config(tiny_model_dir, max_steps=2), second)
    assert answer["state"] == "queued" and answer["position"] == 1 and answer["expected_start"] is None
    assert (second / "config.yaml").is_file() and len(fake_jobs) == 1
    runs = {run["name"]: run for run in list_runs()}
    assert runs["second"]["state"] == "queued" and runs["second"]["queue_position"] == 1
    (first / "trainer_log.jsonl").write_text('{"current_steps": 1, "total_steps": 2, "remaining_time": "0:01:05"}\n')
    position, expected = position_and_expected_start(list_queue()[0])
    assert position == 1 and 60 < expected - time.time() <= 65
    assert dispatch() == []  # nothing freed: a no-op
    _finish(fake_jobs[0])
    assert [e["run_dir"] for e in dispatch()] == [str(second)]
    assert read_status(second)["state"] == "running" and list_queue() == []


def test_the_queue_survives_a_restart(studio_home, tiny_model_dir, fake_jobs):
    _busy(studio_home)
    ids = [enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", name))["id"]
           for name in ("a", "b")]
    code = "import json; from studio.queue import list_queue; print(json.dumps([e['id'] for e in list_queue()]))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=studio_home,
                           env={**os.environ, "STUDIO_HOME": str(studio_home), "PYTHONPATH": str(ROOT)})
    assert json.loads(fresh.stdout.strip().splitlines()[-1]) == ids


def test_entries_move_and_cancel_without_touching_other_runs(studio_home, tiny_model_dir, fake_jobs):
    _busy(studio_home)
    entries = {name: enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", name))
               for name in ("a", "b", "c")}
    order = lambda: [Path(e["run_dir"]).name for e in list_queue()]  # noqa: E731
    move(entries["c"]["id"], "top")
    assert order() == ["c", "a", "b"]
    move(entries["a"]["id"], "down")
    assert order() == ["c", "b", "a"]
    move(entries["c"]["id"], "up")  # already first
    assert order() == ["c", "b", "a"]
    before = {name: sorted(p.name for p in run_folder("tiny", "lora", name).iterdir()) for name in ("a", "c")}
    cancel(entries["b"]["id"])
    assert order() == ["c", "a"]
    assert (run_folder("tiny", "lora", "b") / "config.yaml").is_file()
    assert before == {name: sorted(p.name for p in run_folder("tiny", "lora", name).iterdir()) for name in ("a", "c")}
    with pytest.raises(StudioError) as err:
        cancel(entries["b"]["id"])
    assert err.value.key == "queue_not_found"
    assert abort_run(run_folder("tiny", "lora", "a")) is True and order() == ["c"]  # Abort on a waiting run
    assert abort_run(run_folder("tiny", "lora", "a")) is False


def test_a_config_broken_while_waiting_is_refused_and_the_next_starts(studio_home, tiny_model_dir, fake_jobs):
    live = _busy(studio_home)
    broken, good = run_folder("tiny", "lora", "broken"), run_folder("tiny", "lora", "good")
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), broken)
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), good)
    config = broken / "config.yaml"
    config.write_text(config.read_text().replace("learning_rate: 0.001", "learning_rate: -1.0"))
    write_status(live, "finished")
    assert [e["run_dir"] for e in dispatch()] == [str(good)]
    refused = [e for e in list_queue(include_ended=True) if e["state"] == "refused"]
    assert [e["run_dir"] for e in refused] == [str(broken)] and "learning_rate" in refused[0]["message"]
    assert config.is_file() and read_status(broken)["state"] == "failed"  # the folder is kept and says why


def test_studio_max_cpu_jobs_runs_two_at_once(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    monkeypatch.setattr(capabilities, "device_count", lambda: 0)
    monkeypatch.setenv("STUDIO_MAX_CPU_JOBS", "2")
    states = [start_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", name))["state"]
              for name in ("a", "b", "c")]
    assert states == ["running", "running", "queued"]
    assert all("CUDA_VISIBLE_DEVICES" not in job["env"] for job in fake_jobs)


def test_gpu_jobs_get_disjoint_devices(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    monkeypatch.setattr(capabilities, "device_count", lambda: 4)
    for name in ("a", "b", "c"):
        enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", name), devices=2)
    assert len(dispatch()) == 2
    assert [job["env"]["CUDA_VISIBLE_DEVICES"] for job in fake_jobs] == ["0,1", "2,3"]
    assert [job["env"]["NPROC_PER_NODE"] for job in fake_jobs] == ["2", "2"]
    # An automatic job (every GPU) and one asking for GPU 1 wait; the third count-job takes the first freed pair.
    _finish(fake_jobs[0])
    assert len(dispatch()) == 1 and fake_jobs[2]["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # the studio's own GPUs map the indices
    _finish(fake_jobs[1])
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "d"), devices=[3])
    assert len(dispatch()) == 1 and fake_jobs[3]["env"]["CUDA_VISIBLE_DEVICES"] == "7"
    assert "NPROC_PER_NODE" not in fake_jobs[3]["env"]


def test_jobs_no_device_could_hold_are_refused_at_enqueue(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    monkeypatch.setattr(capabilities, "device_count", lambda: 4)
    run_dir = run_folder("tiny", "lora", "big")
    for devices, key in ((8, "queue_too_many_devices"), ([0, 1, 2, 3, 4, 5, 6, 7], "queue_too_many_devices"),
                         ([5], "queue_no_such_device")):
        with pytest.raises(StudioError) as err:
            enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_dir, devices=devices)
        assert err.value.key == key and "4" in err.value.message()
    assert not run_dir.exists() and list_queue() == []
    monkeypatch.setattr(capabilities, "device_count", lambda: 0)
    with pytest.raises(StudioError) as err:
        enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_dir, devices=[0])
    assert err.value.key == "queue_no_gpu"


def test_a_device_gone_since_enqueue_makes_the_entry_wait(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    monkeypatch.setattr(capabilities, "device_count", lambda: 4)
    _busy(studio_home)  # holds every GPU until it ends
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "late"), devices=[3])
    write_status(studio_home / "saves" / "other" / "full" / "busy", "finished")
    monkeypatch.setattr(capabilities, "device_count", lambda: 2)
    assert dispatch() == []
    assert "GPU 3" in list_queue()[0]["message"] and list_queue()[0]["state"] == "queued"
    # Fewer GPUs than a job needs: no device of this machine could ever hold it, so it is refused, the next starts.
    monkeypatch.setattr(capabilities, "device_count", lambda: 4)
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "wide"), devices=4)
    enqueue_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "narrow"), devices=1)
    monkeypatch.setattr(capabilities, "device_count", lambda: 2)
    assert [Path(e["run_dir"]).name for e in dispatch()] == ["narrow"]
    refused = [e for e in list_queue(include_ended=True) if e["state"] == "refused"]
    assert [Path(e["run_dir"]).name for e in refused] == ["wide"] and "2" in refused[0]["message"]


def test_two_studios_on_one_home_start_one_and_queue_the_other(studio_home, tiny_model_dir):
    config = tiny_config(tiny_model_dir, max_steps=100000, save_steps=100000)
    other_dir, our_dir = run_folder("tiny", "lora", "theirs"), run_folder("tiny", "lora", "ours")
    script = textwrap.dedent(f"""
        import json, sys
        from studio.runner import start_run
        print(start_run(json.loads(sys.argv[1]), {str(other_dir)!r})["state"])
    """)
    other = subprocess.Popen([sys.executable, "-c", script, json.dumps(config)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    outcomes = [start_run(config, our_dir)["state"]]
    outcomes.append(other.communicate(timeout=120)[0].strip().splitlines()[-1])
    try:
        assert sorted(outcomes) == ["queued", "running"]
    finally:
        for entry in list_queue():
            cancel(entry["id"])
        for run_dir in (other_dir, our_dir):
            if read_status(run_dir).get("state") == "running":
                abort_run(run_dir, grace=1.0)
                wait_for_state(run_dir, timeout=60)


@pytest.mark.slow
def test_a_real_run_ending_starts_the_queued_one(studio_home, tiny_model_dir):
    first, second = run_folder("tiny", "lora", "first"), run_folder("tiny", "lora", "second")
    assert start_run(tiny_config(tiny_model_dir, max_steps=2), first)["state"] == "running"
    assert start_run(tiny_config(tiny_model_dir, max_steps=2), second)["state"] == "queued"
    assert wait_for_state(first, timeout=120)["state"] == "finished"
    # Nobody calls dispatch: the studio that started the first run starts the next when it ends.
    assert wait_for_state(second, ("running", "finished"), timeout=30)["state"] in ("running", "finished")
    assert wait_for_state(second, timeout=120)["state"] == "finished" and list_queue() == []


def test_only_the_process_count_reaches_the_job_environment(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    monkeypatch.setattr(capabilities, "device_count", lambda: 0)
    env = {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "LD_PRELOAD": "/tmp/evil.so", "PYTHONPATH": "/tmp"}
    start_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", "ddp"), env=env)
    assert fake_jobs[0]["env"] == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}


@pytest.mark.slow
@pytest.mark.browser
def test_the_page_queues_a_start_and_cancels_it(tmp_path, browser):
    """In Chromium: Start while another job runs says "Queued, position 1" (and the page follows the waiting run);
    the queue panel lists it; Cancel takes it out."""
    from playwright.sync_api import expect

    from tests.studio.conftest import shot, start_studio, stop
    from tests.studio.test_browser import open_studio

    (tmp_path / "saves").mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    fake_live_run(tmp_path / "saves" / "other" / "lora" / "busy", sleeper.pid)
    proc, url = start_studio(tmp_path)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_studio(page, url)
        page.get_by_role("button", name="Start").click()
        expect(page.locator("#status")).to_contain_text("Queued, position 1")
        page.locator("#group_queue").get_by_text("Job queue").first.click()
        expect(page.locator("#queue_table")).to_contain_text("train_")
        page.locator("#queue_pick input").first.click()
        page.get_by_role("option", name=re.compile(r"^1\. train_")).click()
        shot(page, "queue-panel")
        page.locator("#queue_cancel").click()
        expect(page.locator("#queue_table")).not_to_contain_text("train_")
        assert list_queue_files(tmp_path) == ["cancelled"]
    finally:
        context.close()
        stop(proc)
        os.killpg(sleeper.pid, signal.SIGKILL)


def list_queue_files(home: Path) -> list[str]:
    """The states of the queue's entry files under `home`."""
    return [json.loads(p.read_text())["state"] for p in sorted((home / "saves" / ".studio" / "queue").glob("*.json"))]


def test_eval_and_export_jobs_wait_in_the_same_queue(studio_home, tiny_model_dir, fake_jobs):
    live = _busy(studio_home)
    export_dir = run_folder("tiny", "lora", "export")
    config = {"model_name_or_path": str(tiny_model_dir), "template": "chatml", "finetuning_type": "lora"}
    answer = start_run(config, export_dir, command="export")
    assert answer["state"] == "queued" and answer["entry"]["kind"] == "export"
    assert [run["state"] for run in list_runs() if run["path"] == str(export_dir)] == ["queued"]
    write_status(live, "finished")
    assert [e["kind"] for e in dispatch()] == ["export"] and fake_jobs[0]["run_dir"] == export_dir


def test_starts_from_many_threads_take_the_one_cpu_slot_once(studio_home, tiny_model_dir, fake_jobs, monkeypatch):
    import threading

    monkeypatch.setattr(capabilities, "device_count", lambda: 0)
    states: list[str] = []

    def press(name: str) -> None:
        states.append(start_run(tiny_config(tiny_model_dir, max_steps=2), run_folder("tiny", "lora", name))["state"])

    threads = [threading.Thread(target=press, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(states) == ["queued", "queued", "queued", "running"] and len(fake_jobs) == 1
    assert sorted(position_and_expected_start(e)[0] for e in list_queue()) == [1, 2, 3]
