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
    """What the studio reads from Gradio's request: cookies, the session hash and the client's address."""

    def __init__(self, token: str | None = None, session: str = "session-1", host: str | None = None) -> None:
        self.cookies = {workspace.VISITOR_COOKIE: token} if token else {}
        self.session_hash = session
        # Each test visitor comes from an address of their own unless a test says otherwise.
        host = host or f"198.51.100.{sum(map(ord, token or session)) % 250 + 1}"
        self.client = type("Client", (), {"host": host})()
        self.headers = {}


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
    }  # a step estimate needs the real row count: see test_budgets_that_need_the_real_row_count
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


def test_start_run_checks_the_demo_limits_before_anything_is_written(demo, tmp_path, monkeypatch):
    import studio.queue
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
    from studio.queue import cancel, dispatch, list_queue, move

    answer = start_run(_config(home_a), run_dir)
    assert answer["state"] == "queued" and answer["position"] == 1  # the demo is full: it waits its turn
    second = home_a / "saves" / "demo" / "lora" / "r2"
    with pytest.raises(StudioError) as err:  # a queued job counts against the visitor's own limit
        start_run(_config(home_a, output_dir=str(second)), second)
    assert err.value.key == "demo_visitor_busy" and not second.exists()
    visit("c" * 32)  # another visitor sees none of it, and can neither move nor cancel it
    assert list_queue() == []
    for action in (lambda entry_id: move(entry_id, "top"), cancel):
        with pytest.raises(StudioError) as err:
            action(answer["entry"]["id"])
        assert err.value.key == "queue_not_found"
    visit(TOKEN_A)
    assert [e["id"] for e in list_queue()] == [answer["entry"]["id"]]
    # One of the other jobs ends: the queued one starts, under the demo's limits and in the visitor's workspace.
    write_status(visit("c" * 32) / "saves" / "demo" / "lora" / "busy", "finished")
    launched = []
    monkeypatch.setattr(studio.queue, "launch", lambda cfg, run, kind, lang, base, env: launched.append(
        (run, base, env)) or {"state": "running"})
    assert [e["run_dir"] for e in dispatch()] == [str(run_dir)]
    (started, base, env), = launched
    assert base == home_a and env["TMPDIR"].startswith(str(home_a))


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


# --- deny by default: the keys a visitor may set


@pytest.mark.parametrize("key,value", [("offload_folder", "/tmp/shared"), ("fsdp_config", "/etc/passwd"),
                                       ("torch_compile", True), ("lr_scheduler_kwargs", {"power": 2}),
                                       ("cache_dir", "saves/cache"), ("vllm_gpu_util", 0.99)])
def test_keys_off_the_allow_list_are_refused(demo, key, value):
    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, **{key: value}), "train", home, settings)
    assert err.value.key == "demo_key_not_allowed"
    assert key in err.value.message("en")


def test_keys_left_at_their_default_and_setting_names_pass(demo):
    settings, visit = demo
    home = visit()
    accepted = apply_limits(_config(home, torch_compile=False, offload_folder="offload", optim="adamw_torch"), "train",
                            home, settings)
    assert accepted["torch_compile"] is False
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, report_to="wandb"), "train", home, settings)  # the host's account, not theirs
    assert err.value.key == "demo_value_not_allowed"
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, resume_from_checkpoint="/elsewhere/checkpoint-5"), "train", home, settings)
    assert err.value.key == "demo_path_outside"
    assert "Resume" in err.value.message("en") or "resume_from_checkpoint" in err.value.message("en")


def test_a_refused_setting_is_named_by_its_key_on_the_command_line_and_by_its_label_in_the_studio(demo):
    from studio.markup import html_error

    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, report_to="wandb"), "train", home, settings)
    assert err.value.message("en").startswith("report_to cannot be 'wandb'")
    assert html_error(err.value, "en").startswith("Experiment tracker (report_to) cannot be")
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, output_dir="/elsewhere/run"), "train", home, settings)
    assert "output_dir cannot be '/elsewhere/run'" in err.value.message("en")


def test_an_alias_cannot_slip_past_the_limits(demo):
    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:  # the old name of cutoff_len
        apply_limits(_config(home, max_seq_length=10**6), "train", home, settings)
    assert err.value.key == "demo_tokens_limit"


@pytest.mark.parametrize("key,value", [("reward_model", "someone/huge-reward-model"),
                                       ("ref_model", "/opt/models/big"),
                                       ("model_name_or_path", "../vsomeoneelse/saves/demo/full/run")])
def test_model_keys_take_allowed_models_or_own_runs_only(demo, key, value):
    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, stage="ppo", **{key: value}), "train", home, settings)
    assert err.value.key in ("demo_model_not_allowed", "demo_path_outside")


def test_own_runs_are_accepted_as_models_and_adapters_with_absolute_paths(demo):
    settings, visit = demo
    home = visit()
    run = home / "saves" / "demo" / "lora" / "rm1"
    run.mkdir(parents=True)
    accepted = apply_limits(_config(home, stage="ppo", reward_model="saves/demo/lora/rm1",
                                    adapter_name_or_path=f"saves/demo/lora/rm1, {run}"), "train", home, settings)
    assert accepted["reward_model"] == str(run.resolve())
    assert accepted["adapter_name_or_path"] == f"{run.resolve()},{run.resolve()}"
    evaluated = apply_limits({"model_name_or_path": "demo", "output_dir": str(home / "saves" / "e1"),
                              "adapter_name_or_path": str(run), "compare_with": "base",
                              "task": "studio_bench_test"}, "eval", home, settings)
    assert evaluated["compare_with"] == "base"


# --- deny by default: one function confines every path


def test_relative_write_paths_become_absolute_paths_in_the_workspace(demo):
    settings, visit = demo
    home = visit()
    accepted = apply_limits(_config(home, tokenized_path="saves/.cache/tokenized/abc", overwrite_cache=True),
                            "train", home, settings)
    assert accepted["tokenized_path"] == str((home / "saves" / ".cache" / "tokenized" / "abc").resolve())


def test_a_symlink_out_of_the_workspace_is_refused_for_writing(demo, tmp_path):
    from studio.demo_paths import confine_path

    settings, visit = demo
    home = visit()
    outside = tmp_path / "outside"
    outside.mkdir()
    (home / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StudioError) as err:
        confine_path("escape/cache", "tokenized_path", home, write=True)
    assert err.value.key == "demo_path_outside"
    with pytest.raises(StudioError):
        confine_path("saves/../../other", "output_dir", home, write=True)


def test_another_visitors_checkpoint_is_refused(demo):
    settings, visit = demo
    other = visit(TOKEN_B) / "saves" / "demo" / "lora" / "theirs" / "checkpoint-5"
    other.mkdir(parents=True)
    home = visit(TOKEN_A)
    for key in ("resume_from_checkpoint", "adapter_name_or_path", "ref_model_adapters", "compare_with"):
        with pytest.raises(StudioError) as err:
            apply_limits(_config(home, **{key: str(other)}), "train", home, settings)
        assert err.value.key == "demo_path_outside", key
    own = home / "saves" / "demo" / "lora" / "r1" / "checkpoint-5"
    own.mkdir(parents=True)
    assert apply_limits(_config(home, resume_from_checkpoint=str(own)), "train", home, settings)[
        "resume_from_checkpoint"] == str(own.resolve())
    assert apply_limits(_config(home, resume_from_checkpoint=True), "train", home, settings)[
        "resume_from_checkpoint"] is True


def test_deepspeed_configs_come_from_the_shipped_folder_only(demo):
    settings, visit = demo
    home = visit()
    mine = home / "data" / "ds.json"
    mine.parent.mkdir(parents=True, exist_ok=True)
    mine.write_text("{}", encoding="utf-8")  # an upload could name offload paths anywhere on the machine
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, deepspeed=str(mine)), "train", home, settings)
    assert err.value.key == "demo_path_outside"


# --- caches and derived files per workspace


def test_job_env_keeps_every_cache_inside_the_workspace_and_removal_deletes_it(demo):
    _, visit = demo
    home = visit()
    env = demo_mode.job_env(home)
    assert "STUDIO_TOKENIZED_CACHE" in env and "HF_DATASETS_CACHE" in env and "TMPDIR" in env
    for value in env.values():
        path = Path(value)
        assert path.is_absolute() and path.resolve().is_relative_to(home.resolve())
        (path / "rows.arrow").parent.mkdir(parents=True, exist_ok=True)
        (path / "rows.arrow").write_text("user rows", encoding="utf-8")
    workspace.remove_workspace(home)
    assert not any(Path(value).exists() for value in env.values())


# --- budgets on the real work


def test_apply_limits_reads_no_data(demo, monkeypatch):
    import engine.data

    def refuse(*args, **kwargs):
        raise AssertionError("the studio process must not read datasets")

    monkeypatch.setattr(engine.data, "load_examples", refuse)
    settings, visit = demo
    home = visit()
    apply_limits(_config(home, max_steps=0), "train", home, settings)


@pytest.mark.parametrize("overrides,key", [
    ({"max_steps": 30, "per_device_train_batch_size": 1024, "gradient_accumulation_steps": 1024,
      "cutoff_len": 10**6}, "demo_tokens_limit"),
    ({"stage": "grpo", "max_steps": 30, "num_generations": 64, "max_completion_length": 32768},
     "demo_generated_limit"),
    ({"stage": "ppo", "max_steps": 30, "max_completion_length": 32768}, "demo_generated_limit"),
    ({"dataloader_num_workers": 64}, "demo_value_limit"),
    ({"preprocessing_num_workers": 64}, "demo_value_limit"),
    ({"dataset": ",".join(["identity"] * 50)}, "demo_dataset_repeated"),
])
def test_work_budgets_decidable_from_the_config(demo, overrides, key):
    settings, visit = demo
    home = visit()
    with pytest.raises(StudioError) as err:
        apply_limits(_config(home, **overrides), "train", home, settings)
    assert err.value.key == key
    assert "{" not in err.value.message("en")


def test_budgets_that_need_the_real_row_count(demo):
    from studio.demo_mode import check_budgets

    settings, visit = demo
    home = visit()
    config = apply_limits(_config(home, max_steps=0, num_train_epochs=100.0), "train", home, settings)
    with pytest.raises(StudioError) as err:
        check_budgets(config, "train", 91, settings)
    assert err.value.key == "demo_steps_estimate"
    with pytest.raises(StudioError) as err:
        check_budgets(config, "train", None, settings)  # unknown rows: the steps cannot be bounded
    assert err.value.key == "demo_steps_unknown"
    with pytest.raises(StudioError) as err:
        check_budgets(_config(home), "train", settings.max_rows + 1, settings)
    assert err.value.key == "demo_rows_limit"
    check_budgets(apply_limits(_config(home, max_steps=0), "train", home, settings), "train", 91, settings)
    predict = {"model_name_or_path": "demo", "do_predict": True, "eval_dataset": "identity", "max_new_tokens": 4096}
    with pytest.raises(StudioError) as err:
        check_budgets(predict, "eval", 500, settings)
    assert err.value.key == "demo_generated_limit"
    with pytest.raises(StudioError) as err:
        check_budgets(predict, "eval", None, settings)
    assert err.value.key == "demo_rows_unknown"
    check_budgets({**predict, "max_new_tokens": 64}, "eval", 50, settings)


def test_chat_tokens_are_bounded(demo):
    settings, visit = demo
    home = visit()
    config = apply_limits({"model_name_or_path": "demo"}, "chat", home, settings)
    assert config["max_new_tokens"] <= settings.max_chat_tokens  # the server's default answer length
    demo_mode.check_chat_tokens(256, settings)
    with pytest.raises(StudioError) as err:
        demo_mode.check_chat_tokens(settings.max_chat_tokens + 1, settings)
    assert err.value.key == "demo_value_limit"


def test_capacity_per_visitor_client_and_total():
    settings = DemoSettings(runs_per_visitor=1, runs_per_client=2, runs_total=3)
    demo_mode.check_capacity(0, 1, 2, settings)
    for counts, key in (((1, 1, 1), "demo_visitor_busy"), ((0, 2, 2), "demo_client_busy"),
                        ((0, 0, 3), "demo_busy")):
        with pytest.raises(StudioError) as err:
            demo_mode.check_capacity(*counts, settings)
        assert err.value.key == key and "{" not in err.value.message("en")


def test_settings_show_the_budgets_in_the_banner():
    settings = DemoSettings.from_env({"STUDIO_DEMO_MAX_JOB_MINUTES": "7", "STUDIO_DEMO_MAX_TRAIN_TOKENS": "1234"})
    assert settings.max_job_minutes == 7 and settings.max_train_tokens == 1234
    text = demo_mode.limits_text(settings, "en")
    assert "7" in text and "1,234" in text or "1234" in text


# --- identities: one client cannot mint workspaces without end


class ClientRequest(FakeRequest):
    def __init__(self, session: str, host: str, forwarded: str | None = None) -> None:
        super().__init__(None, session, host)
        self.headers = {"x-forwarded-for": forwarded} if forwarded else {}


def test_new_workspaces_per_client_are_limited(demo, monkeypatch):
    from gradio.context import LocalContext

    demo_mode.activate(DemoSettings(new_workspaces_per_hour=2))
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("SYSTEM", raising=False)
    made = []
    for n in range(3):
        token = LocalContext.request.set(ClientRequest(f"script-{n}", "203.0.113.9"))
        try:
            if n < 2:
                made.append(workspace.require_visitor())
            else:
                with pytest.raises(StudioError) as err:
                    workspace.require_visitor()
                assert err.value.key == "demo_too_many_visitors"
                assert not workspace.home().exists()  # nothing was created for the refused identity
        finally:
            LocalContext.request.reset(token)
    assert sorted(workspace.same_client_workspaces(made[0])) == sorted(made)
    for folder in made:
        assert "203.0.113.9" not in "".join(p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file())
    token = LocalContext.request.set(ClientRequest("someone-else", "198.51.100.1"))
    try:
        other = workspace.require_visitor()  # another address is not held back
    finally:
        LocalContext.request.reset(token)
    assert workspace.same_client_workspaces(other) == [other]


def test_forwarded_for_counts_only_on_a_hosting_platform(monkeypatch):
    request = ClientRequest("s", "10.0.0.1", forwarded="203.0.113.9, 10.0.0.2")
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("SYSTEM", raising=False)
    monkeypatch.delenv("MODELSCOPE_ENVIRONMENT", raising=False)
    assert workspace.client_address(request) == "10.0.0.1"  # anyone can send the header to a bare studio
    monkeypatch.setenv("SPACE_ID", "someone/studio")
    assert workspace.client_address(request) == "203.0.113.9"


# --- wall-clock time per job


def test_jobs_running_too_long_are_aborted(demo):
    from engine.runfolder import read_status, wait_for_state

    settings, visit = demo
    home = visit()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        run = home / "saves" / "demo" / "lora" / "long"
        run.mkdir(parents=True)
        write_status(run, "running", pid=sleeper.pid, pid_start_time=process_start_time(sleeper.pid))
        started = read_status(run)["started_at"]
        assert janitor.abort_overdue_jobs(settings, now=time.time()) == []
        late = time.time() + settings.max_job_minutes * 60 + 5
        assert janitor.abort_overdue_jobs(settings, now=late) == [run], started
        sleeper.wait(timeout=20)
        status = wait_for_state(run, ("aborted",), timeout=20)  # a dead pid reads as failed until then
        assert status["state"] == "aborted" and "Stopped by the demo" in status["error"]  # not "by the user"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_every_key_the_tabs_send_is_on_the_allow_list():
    from engine.config.loader import KEYS
    from studio.config_builder import UI_ONLY
    from studio.demo_keys import ALLOWED
    from studio.tabs.train import FORM_FIELDS

    composites = {"flash_attn", "use_unsloth", "enable_liger_kernel", "bf16", "fp16", "pure_bf16", "deepspeed",
                  "quantization_bit", "template", "rope_scaling", "model_name_or_path", "adapter_name_or_path",
                  "output_dir", "dataset_dir", "dataset", "max_steps"}
    evaluate = {"finetuning_type", "per_device_eval_batch_size", "do_predict", "eval_dataset", "cutoff_len",
                "max_samples", "max_new_tokens", "top_p", "temperature", "do_sample", "task", "n_shot", "lang",
                "compare_with"}
    export = {"export_size", "export_device", "export_legacy_format", "export_gguf", "export_parity",
              "export_quantization_bit", "export_quantization_dataset", "export_dir"}
    chat = {"infer_backend", "infer_dtype"}
    train = {key for key in FORM_FIELDS if key in KEYS and key not in UI_ONLY}
    assert train | composites | evaluate | export | chat <= ALLOWED


def test_a_demo_run_can_be_resumed_from_its_saved_config(demo):
    from engine.config import config_from_dict

    settings, visit = demo
    home = visit()
    saved = config_from_dict(apply_limits(_config(home), "train", home, settings)).to_dict(include_secrets=False)
    resumed = apply_limits({**saved, "resume_from_checkpoint": True}, "train", home, settings)
    assert resumed["resume_from_checkpoint"] is True


def test_chat_replies_longer_than_the_demo_allows_are_refused_before_asking_the_server(demo):
    from studio.chat_server import stream_reply

    settings, visit = demo
    visit()
    state = {"url": "http://127.0.0.1:9", "key": "k"}  # nothing listens there: a request would fail differently
    with pytest.raises(StudioError) as err:
        next(stream_reply(state, [{"role": "user", "content": "hi"}], max_tokens=settings.max_chat_tokens + 1))
    assert err.value.key == "demo_value_limit"
