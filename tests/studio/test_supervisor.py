"""The process supervisor: checks run in an engine process, relative paths mean one thing, no two of a kind."""

from __future__ import annotations

import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StudioError
from engine.paths import resource_dir
from engine.runfolder import wait_for_state
from studio import chat_server, supervisor
from studio.runner import start_run
from studio.runs import run_folder
from tests.studio.test_runner import tiny_config


def test_data_checks_run_in_an_engine_process_not_the_studio(studio_home: Path, tiny_model_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    import engine.data.pipeline
    import studio.runner

    def read_in_studio(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the studio process read the dataset")

    monkeypatch.setattr(engine.data.pipeline, "check_local_data", read_in_studio)
    monkeypatch.setattr(studio.runner, "check_local_data", read_in_studio, raising=False)  # an earlier import
    broken = studio_home / "mydata"
    broken.mkdir()
    (broken / "dataset_info.json").write_text(json.dumps({"broken": {"file_name": "broken.json"}}))
    (broken / "broken.json").write_text("[{\"instruction\": \"hi\", ")
    run_dir = run_folder("tiny", "lora", "broken")
    with pytest.raises(StudioError) as err:
        start_run(tiny_config(tiny_model_dir, dataset="broken", dataset_dir=str(broken), max_steps=2), run_dir)
    assert "broken.json" in err.value.message()  # the engine's own message, carried back from its process
    assert not run_dir.exists()


def test_a_relative_path_means_the_same_to_the_studio_and_the_engine(studio_home: Path, tiny_model_dir: Path,
                                                                     tmp_path_factory: pytest.TempPathFactory,
                                                                     monkeypatch: pytest.MonkeyPatch):
    # The studio runs from another folder than STUDIO_HOME: relative paths in a config mean STUDIO_HOME's.
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    mine = studio_home / "mydata"
    mine.mkdir()
    shutil.copy(resource_dir("data") / "identity.json", mine / "mine.json")
    (mine / "dataset_info.json").write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    run_dir = run_folder("tiny", "lora", "relative")
    start_run(tiny_config(tiny_model_dir, dataset="mine", dataset_dir="mydata", max_steps=2), run_dir)
    status = wait_for_state(run_dir, timeout=120)
    assert status["state"] == "finished", (run_dir / "running_log.txt").read_text()[-2000:]


FAKE_SERVER = """
import sys, time
print("API server ready on http://127.0.0.1:9", flush=True)
time.sleep(120)
"""


@pytest.fixture()
def fake_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """`python -m engine api` replaced by a script that says it is ready and sleeps; the pids it started."""
    script = tmp_path / "fake_api.py"
    script.write_text(FAKE_SERVER)
    started: list[int] = []
    real_spawn = supervisor.spawn

    def spawn(argv: list[str], **kwargs: Any) -> dict[str, Any]:
        record = real_spawn([sys.executable, str(script)], **kwargs)
        started.append(record["pid"])
        return record

    monkeypatch.setattr(supervisor, "spawn", spawn)
    yield started
    for pid in started:
        if supervisor.alive(pid, None):
            supervisor.kill_tree([pid])


def test_two_load_clicks_leave_one_chat_server(studio_home: Path, tiny_model_dir: Path, fake_api: list[int]):
    config = {"model_name_or_path": str(tiny_model_dir), "template": "chatml"}
    barrier, states, errors = threading.Barrier(2), [], []

    def load() -> None:
        barrier.wait()
        try:
            states.append(chat_server.start_server(config, timeout=30))
        except StudioError as err:
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(states) == 2
    assert len(fake_api) == 1  # the second click joined the first click's server
    assert states[0]["pid"] == states[1]["pid"] == chat_server.find_server()["pid"]
    # Other settings replace the server: the old one is stopped, never orphaned.
    chat_server.start_server({**config, "temperature": 0.5}, timeout=30)
    assert len(fake_api) == 2 and not supervisor.alive(fake_api[0], None)
    assert chat_server.stop_server() and not supervisor.alive(fake_api[1], None)


@pytest.mark.parametrize("pid", ["123", [1], 1.5, -4, 0, True, None, 2**80])
def test_malformed_pids_are_never_alive_nor_signalled(pid: Any):
    assert not supervisor.alive(pid, "1")
    assert supervisor.stop([(pid, "1")], grace=0.1) is False


MALFORMED_STATUS = ['{"state": "running", "pid": "123"}', '{"state": ["running"], "pid": [1]}', "[1, 2]", "null",
                    '"finished"', "", "\x00\xff garbage", '{"state": "finished", "started_at": 5, "ended_at": [],'
                    ' "error": {"x": 1}, "checkpoint": 7, "exit_code": "one", "task": 3}',
                    '{"state": "running", "pid": 99999999999999999999, "pid_start_time": 12}']


@pytest.mark.parametrize("text", MALFORMED_STATUS)
def test_malformed_status_files_never_break_the_runs_list_or_the_monitor(studio_home: Path, text: str):
    from studio.monitor import RunMonitor, progress_text, status_markdown
    from studio.runs import list_runs, runs_table

    run_dir = run_folder("m", "lora", "odd")
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_bytes(text.encode("utf-8", errors="surrogateescape"))
    (run_dir / "trainer_log.jsonl").write_text('{"current_steps": 1, "total_steps": 2, "loss": 1.0}\n')
    runs = list_runs()
    assert [Path(r["path"]) for r in runs] == [run_dir] and isinstance(runs_table(runs), object)
    view = RunMonitor().poll(run_dir)
    assert isinstance(view.state, str)
    status_markdown(view), progress_text(view)
