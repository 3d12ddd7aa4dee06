"""Demo mode without a browser: settings, platform detection, limits, workspaces, the visitor cookie, clean-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from engine.errors import StudioError
from engine.runfolder import process_start_time, write_status
from studio import demo_mode, janitor, workspace
from studio.demo_mode import DemoSettings, apply_limits, demo_requested, detect_platform

TOKEN_A = "a" * 32
TOKEN_B = "b" * 32


class FakeRequest:
    """What the studio reads from Gradio's request: cookies and the session hash."""

    def __init__(self, token: str | None = None, session: str = "session-1") -> None:
        self.cookies = {workspace.VISITOR_COOKIE: token} if token else {}
        self.session_hash = session


@pytest.fixture()
def demo(tmp_path, monkeypatch):
    """Demo mode on, STUDIO_HOME in a temp folder; `visit(token)` makes that visitor the current request."""
    from gradio.context import LocalContext

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    settings = DemoSettings(max_steps=40, max_samples=500, max_upload_mb=0.01, runs_total=2, chats_total=1)
    demo_mode.activate(settings)
    workspace._seen.clear()
    tokens = []

    def visit(token: str | None = TOKEN_A, session: str = "session-1") -> Path:
        tokens.append(LocalContext.request.set(FakeRequest(token, session)))
        return workspace.home()

    yield settings, visit
    for token in reversed(tokens):
        LocalContext.request.reset(token)
    demo_mode.activate(None)


# --- settings and platform


def test_settings_from_env_override_and_errors():
    settings = DemoSettings.from_env({"STUDIO_DEMO_MAX_STEPS": "50", "STUDIO_DEMO_MAX_UPLOAD_MB": "2.5",
                                      "STUDIO_DEMO_MODELS": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert settings.max_steps == 50 and settings.max_upload_mb == 2.5
    assert settings.models == ("demo", "Qwen/Qwen2.5-0.5B-Instruct")  # the offline model is always allowed
    with pytest.raises(SystemExit, match="STUDIO_DEMO_MAX_STEPS='many' is not a number"):
        DemoSettings.from_env({"STUDIO_DEMO_MAX_STEPS": "many"})
    with pytest.raises(SystemExit, match="must be positive"):
        DemoSettings.from_env({"STUDIO_DEMO_RUNS_TOTAL": "0"})


def test_platform_detection_switches_demo_mode_on():
    assert detect_platform({"SPACE_ID": "someone/studio"}) == "spaces"
    assert detect_platform({"SYSTEM": "spaces"}) == "spaces"
    assert detect_platform({"MODELSCOPE_ENVIRONMENT": "studio"}) == "modelscope"
    assert detect_platform({}) is None
    assert demo_requested(False, {"SPACE_ID": "someone/studio"})
    assert not demo_requested(False, {"SPACE_ID": "someone/studio", "STUDIO_DEMO": "0"})  # an owner's own Space
    assert demo_requested(True, {}) and demo_requested(False, {"STUDIO_DEMO": "1"})
    assert not demo_requested(False, {})


# --- limits


def _config(home: Path, **overrides) -> dict:
    config = {"model_name_or_path": "demo", "stage": "sft", "finetuning_type": "lora", "dataset": "identity",
              "dataset_dir": workspace.dataset_dir("data"), "output_dir": str(home / "saves" / "demo" / "lora" / "r1"),
              "per_device_train_batch_size": 8, "num_train_epochs": 1.0, "max_steps": 10}
    return {**config, **overrides}


def test_limits_refuse_with_the_rule_broken(demo):
    settings, visit = demo
    home = visit()
    cases = {
        "demo_model_not_allowed": {"model_name_or_path": "meta-llama/Llama-3.1-70B"},
        "demo_remote_code": {"trust_remote_code": True},
        "demo_hub_upload": {"push_to_hub": True, "hub_model_id": "me/model"},
        "demo_samples_limit": {"max_samples": 10_000},
        "demo_steps_limit": {"max_steps": 41},
        "demo_steps_estimate": {"max_steps": 0, "num_train_epochs": 100.0},
    }
    for key, overrides in cases.items():
        with pytest.raises(StudioError) as err:
            apply_limits(_config(home, **overrides), "train", home, settings)
        assert err.value.key == key, overrides
        assert "{" not in err.value.message("en")  # every placeholder filled
    accepted = apply_limits(_config(home, max_steps=0), "train", home, settings)  # identity: 1 epoch fits
    assert accepted["max_samples"] == settings.max_samples  # the row cap applies when none was asked for


@pytest.mark.parametrize("key,value", [("output_dir", "/etc/studio"), ("adapter_name_or_path", "../other/run"),
                                       ("dataset_dir", "/"), ("export_dir", "/tmp/elsewhere"),
                                       ("adapter_name_or_path", "saves/ok,/root/secret")])
def test_paths_outside_the_workspace_are_refused(demo, key, value):
    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, **{key: value}), "train", home, settings)
    assert err.value.key == "demo_path_outside"
    assert key in err.value.message("en")


def test_shipped_read_only_folders_are_allowed(demo):
    from engine.paths import resource_dir

    settings, visit = demo
    home = visit()
    deepspeed = resource_dir("examples") / "deepspeed" / "ds_z2_config.json"
    apply_limits(_config(home, deepspeed=str(deepspeed)), "train", home, settings)


# --- workspaces


def test_each_visitor_has_a_workspace_of_their_own(demo, tmp_path):
    _, visit = demo
    home_a = visit(TOKEN_A)
    assert workspace.saves_dir() == home_a / "saves"
    home_b = visit(TOKEN_B)
    home_again = visit(TOKEN_A)
    assert home_a != home_b and home_a == home_again
    assert home_a.parent == tmp_path / workspace.WORKSPACES
    assert TOKEN_A not in str(home_a)  # the folder name is a hash: paths in the page do not reveal the cookie
    no_cookie = visit(None, session="page-load-7")  # cookies refused: the page's session still isolates
    assert no_cookie not in (home_a, home_b)
    visit("not a token!")  # a malformed cookie is ignored, not used as a folder name
    assert workspace.home().name.startswith("s")


def test_outside_a_request_demo_mode_writes_nowhere(demo):
    assert workspace.visitor_id() is None
    with pytest.raises(StudioError) as err:
        workspace.require_visitor()
    assert err.value.key == "demo_no_visitor"


def test_visitor_datasets_link_the_shipped_ones_and_keep_uploads_private(demo, tmp_path):
    from studio.datasets import list_datasets, register_upload

    settings, visit = demo
    visit(TOKEN_A)
    data_a = workspace.dataset_dir("data")
    assert "identity" in list_datasets(data_a, "sft")
    upload = tmp_path / "mine.json"
    upload.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]), encoding="utf-8")
    register_upload(upload, data_a, "mine", "alpaca", {})
    assert "mine" in list_datasets(data_a, "sft")
    visit(TOKEN_B)
    data_b = workspace.dataset_dir("anything the page sends")
    assert data_b != data_a and "mine" not in list_datasets(data_b, "sft")
    too_many = tmp_path / "big.json"
    too_many.write_text(json.dumps([{"instruction": f"q{i}", "output": "a"} for i in range(501)]), encoding="utf-8")
    with pytest.raises(StudioError) as err:
        register_upload(too_many, data_b, "big", "alpaca", {}, max_rows=settings.max_samples)
    assert err.value.key == "demo_upload_rows"
    assert "big" not in list_datasets(data_b, "sft")  # nothing registered
    with pytest.raises(StudioError) as err:
        demo_mode.check_upload(too_many, settings)  # 0.01 MB limit in this fixture
    assert err.value.key == "demo_upload_too_big"


def test_start_run_checks_the_demo_limits_before_anything_is_written(demo, tmp_path):
    from studio.runner import start_run

    settings, visit = demo
    home_a = visit(TOKEN_A)
    run_dir = home_a / "saves" / "demo" / "lora" / "r1"
    with pytest.raises(StudioError) as err:
        start_run(_config(home_a, max_steps=1000), run_dir)
    assert err.value.key == "demo_steps_limit" and not run_dir.exists()
    with pytest.raises(StudioError) as err:  # another visitor's folder
        start_run(_config(home_a), tmp_path / WORKSPACE_OTHER / "saves" / "run")
    assert err.value.key == "output_dir_outside_saves"
    # Two other visitors' jobs are live: the demo is full for everyone.
    for token in ("c" * 32, "d" * 32):
        other = visit(token) / "saves" / "demo" / "lora" / "busy"
        other.mkdir(parents=True)
        write_status(other, "running", pid=os.getpid(), pid_start_time=process_start_time(os.getpid()))
    visit(TOKEN_A)
    with pytest.raises(StudioError) as err:
        start_run(_config(home_a), run_dir)
    assert err.value.key == "demo_busy" and not run_dir.exists()


WORKSPACE_OTHER = "workspaces/vsomeoneelse"


def test_idle_workspaces_are_cleaned_up(demo, tmp_path):
    settings, visit = demo
    old, fresh = visit(TOKEN_A), visit(TOKEN_B)
    (old / ".last_seen").write_text(str(int(time.time() - 3 * 3600)), encoding="utf-8")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        live = old / "saves" / "demo" / "lora" / "live"
        live.mkdir(parents=True)
        write_status(live, "running", pid=sleeper.pid, pid_start_time=process_start_time(sleeper.pid))
        assert janitor.clean_idle_workspaces(settings) == []  # its run is aborted first, the folder kept
        sleeper.wait(timeout=20)
        write_status(live, "aborted")
        assert janitor.clean_idle_workspaces(settings) == [old.name]
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert not old.exists() and fresh.exists()


# --- the cookie


def test_visitor_cookie_is_set_on_the_page_only():
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    app = Starlette(routes=[Route("/", lambda r: HTMLResponse("<p>page</p>")),
                            Route("/api", lambda r: JSONResponse({}))],
                    middleware=[Middleware(workspace.VisitorCookie)])
    client = TestClient(app)
    page = client.get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{workspace.VISITOR_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert workspace.valid_token(token)
    assert "set-cookie" not in TestClient(app).get("/api").headers  # assets never hand out competing tokens
    assert "set-cookie" not in client.get("/").headers  # a visitor keeps the token they have
    https = TestClient(app).get("/", headers={"x-forwarded-proto": "https"}).headers["set-cookie"]
    assert "SameSite=None" in https and "Secure" in https and "Partitioned" in https  # inside a platform iframe


# --- download


def test_pack_run_zips_the_final_files_but_not_checkpoints(tmp_path):
    from studio.runs import pack_run

    run = tmp_path / "run1"
    (run / "checkpoint-5").mkdir(parents=True)
    for name in ("adapter_model.safetensors", "adapter_config.json", "config.yaml", "training_args.bin"):
        (run / name).write_bytes(b"x")
    (run / "checkpoint-5" / "adapter_model.safetensors").write_bytes(b"x")
    archive = pack_run(run, tmp_path / "out")
    names = zipfile.ZipFile(archive).namelist()
    assert sorted(names) == ["run1/adapter_config.json", "run1/adapter_model.safetensors", "run1/config.yaml"]
    (run / "adapter_model.safetensors").unlink()
    with pytest.raises(StudioError) as err:
        pack_run(run, tmp_path / "out")
    assert err.value.key == "download_no_weights"


def test_chat_models_follow_the_demo_limits(demo):
    from studio.chat_server import find_server, start_server

    settings, visit = demo
    home_a = visit(TOKEN_A)
    with pytest.raises(StudioError) as err:
        start_server({"model_name_or_path": "/opt/some/model"})
    assert err.value.key == "demo_model_not_allowed"
    with pytest.raises(StudioError) as err:
        start_server({"model_name_or_path": "demo", "adapter_name_or_path": "/etc"})
    assert err.value.key == "demo_path_outside"
    # Another visitor's chat model is loaded and the demo allows one in total.
    state = visit(TOKEN_B) / "saves" / ".studio" / "chat" / "server.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"pid": os.getpid(), "pid_start_time": process_start_time(os.getpid()),
                                 "url": "http://127.0.0.1:1"}), encoding="utf-8")
    assert find_server() is not None  # B's own page finds it
    visit(TOKEN_A)
    assert find_server() is None  # A's page does not
    with pytest.raises(StudioError) as err:
        start_server({"model_name_or_path": "demo"})
    assert err.value.key == "demo_chat_busy"
    assert not (home_a / "saves" / ".studio" / "chat" / "server.json").exists()


def test_evaluation_in_the_demo_keeps_to_shipped_benchmarks(demo):
    settings, visit = demo
    home = visit()
    base = {"model_name_or_path": "demo", "output_dir": str(home / "saves" / "eval1")}
    apply_limits({**base, "task": "studio_bench_test"}, "eval", home, settings)
    with pytest.raises(StudioError) as err:
        apply_limits({**base, "task": "mmlu_test"}, "eval", home, settings)
    assert err.value.key == "demo_eval_task" and "studio_bench_test" in err.value.message("en")
    with pytest.raises(StudioError) as err:
        apply_limits({**base, "task": "studio_bench_test", "task_dir": "/usr/share"}, "eval", home, settings)
    assert err.value.key == "demo_path_outside"
