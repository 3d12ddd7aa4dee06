"""Click through the real studio in Chromium: languages, a training run with live progress, reattach after a
reload, abort, bad input, and login."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.studio.conftest import shot, start_studio, stop

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def open_studio(page, url: str) -> None:
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("button", name="Start").wait_for()
    # The page-load events have run once the run name holds its timestamped default.
    expect(page.locator("#run_name textarea, #run_name input").first).to_have_value(re.compile(r"^train_"))


def choose_dataset(page, name: str) -> None:
    page.locator("#dataset").get_by_role("button", name=re.compile("Clear|×")).first.click()
    box = page.locator("#dataset input").first
    box.fill(name)
    box.press("Enter")


def _type_until_held(page, box, value: str, leave: bool) -> None:
    """Type `value` into `box` (and leave it, handing the value over on blur). A box inside a group that has just
    been opened can still be mounting and take its initial value back: type again until it holds."""
    from playwright.sync_api import expect

    for _ in range(5):
        box.fill(value)
        if leave:
            box.press("Tab")
        page.wait_for_timeout(200)
        if box.input_value() == value:
            break
    expect(box).to_have_value(value)


def set_number(page, elem_id: str, value: str) -> None:
    _type_until_held(page, page.locator(f"#{elem_id} input").first, value, leave=True)


def set_text(page, elem_id: str, value: str) -> None:
    _type_until_held(page, page.locator(f"#{elem_id} textarea, #{elem_id} input").first, value, leave=False)


def server_has(page, timeout: float = 30.0, **values: object) -> None:
    """Wait until the server holds the values typed into the form (a number box hands its value over on blur, and
    a Start pressed before that sends the old one): Preview command sends the whole form the way Start does and
    shows the config the server built from it; it is pressed again until every value is there."""
    command = page.locator("#command")
    wanted = [re.compile(rf"{key}: {re.escape(str(value))}(?![\d.])") for key, value in values.items()]
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        page.get_by_role("button", name="Preview command").click()
        # The editor's lines carry no newline in its text: a value must not go on with a digit.
        page.wait_for_function("() => (document.querySelector('#command') || {}).textContent?.includes('# studio')")
        shown = command.inner_text().replace("\n", " ")
        if all(pattern.search(command.text_content() or "") for pattern in wanted):
            return
        page.wait_for_timeout(300)
    raise AssertionError(f"the server never received {values}; the form it has: {shown[:2000]}")


def open_group(page, label: str) -> None:
    page.get_by_role("button", name=label).first.click()


def pick_language(page, name: str) -> None:
    page.locator("#lang input").click()
    page.get_by_role("option", name=name).click()


def run_dirs(home):
    return sorted(p.parent for p in (home / "saves").rglob("status.json") if "models" not in p.parts)


def test_language_switch_relabels_and_is_remembered(page, studio_server):
    open_studio(page, studio_server["url"])
    pick_language(page, "简体中文")
    page.get_by_text("学习率").first.wait_for()
    shot(page, "lang-zh")
    page.reload()
    page.get_by_text("学习率").first.wait_for()  # remembered across reloads
    pick_language(page, "English")
    page.get_by_text("Learning rate").first.wait_for()


def test_browser_language_is_the_first_one(browser, studio_server):
    context = browser.new_context(locale="de-DE")
    page = context.new_page()
    page.goto(studio_server["url"])
    page.get_by_text("Lernrate").first.wait_for(timeout=30_000)
    shot(page, "lang-browser-de")
    context.close()


def test_train_watch_reload_and_finish(page, studio_server):
    home = studio_server["home"]
    open_studio(page, studio_server["url"])
    assert page.locator("#model_path input, #model_path textarea").first.input_value() == "demo"
    set_number(page, "num_train_epochs", "3")
    open_group(page, "More settings")
    set_number(page, "logging_steps", "1")
    page.locator("#run_name textarea, #run_name input").first.fill("browser_run")
    server_has(page, num_train_epochs=3, logging_steps=1)
    page.get_by_role("button", name="Start").click()
    page.get_by_text(re.compile(r"Step \d+ of \d+")).first.wait_for(timeout=90_000)
    page.locator("#loss_plot svg").first.wait_for(timeout=30_000)
    shot(page, "train-running")
    page.reload()  # the run goes on; the page finds it again from the files
    page.get_by_text(re.compile(r"Step \d+ of \d+|Finished")).first.wait_for(timeout=60_000)
    page.get_by_text("Finished").first.wait_for(timeout=120_000)
    shot(page, "train-finished")
    run = home / "saves" / "demo" / "lora" / "browser_run"
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    assert (run / "adapter_model.safetensors").is_file()
    records = [json.loads(line) for line in (run / "trainer_log.jsonl").read_text().splitlines()]
    state = json.loads((run / "trainer_state.json").read_text())
    assert records and state["global_step"] == state["max_steps"] == records[-1]["total_steps"]


def test_abort_shows_the_checkpoint(page, studio_server):
    open_studio(page, studio_server["url"])
    set_number(page, "num_train_epochs", "200")
    open_group(page, "More settings")
    set_number(page, "logging_steps", "1")
    page.locator("#run_name textarea, #run_name input").first.fill("aborted_run")
    server_has(page, num_train_epochs=200, logging_steps=1)
    page.get_by_role("button", name="Start").click()
    # The new run itself with a step done (so there is something to save), not the progress the page showed
    # before for the previous run (which also reads "Step n of m").
    page.locator("#status").get_by_text(re.compile(r"Running.*step [1-9]\d* of", re.S)).wait_for(timeout=90_000)
    page.get_by_role("button", name="Abort").click()
    page.get_by_text("checkpoint-").first.wait_for(timeout=90_000)
    shot(page, "train-aborted")
    run = studio_server["home"] / "saves" / "demo" / "lora" / "aborted_run"
    assert json.loads((run / "status.json").read_text())["state"] == "aborted"


@pytest.mark.parametrize(("setup", "expected"), [
    (lambda page: set_number(page, "learning_rate", "-1"), "learning_rate"),
    (lambda page: set_number(page, "cutoff_len", "0"), "cutoff_len"),
    (lambda page: (open_group(page, "More settings"), set_text(page, "extra_args", '{"a": ')), "JSON"),
    (lambda page: page.locator("#run_name textarea, #run_name input").first.fill("../../outside"), ".."),
    (lambda page: choose_dataset(page, "no_such_set"), "no_such_set"),
    (lambda page: choose_dataset(page, "empty_set"), "empty_set"),
])
def test_bad_input_is_refused_with_a_message(page, studio_server, setup, expected):
    before = run_dirs(studio_server["home"])
    open_studio(page, studio_server["url"])
    setup(page)
    page.get_by_role("button", name="Start").click()
    page.locator("#start_message").get_by_text("❌").wait_for(timeout=30_000)
    assert expected in page.locator("#start_message").inner_text()
    shot(page, f"bad-input-{expected.strip('.') or 'dots'}")
    time.sleep(0.5)
    assert run_dirs(studio_server["home"]) == before, "nothing was started or written"


def test_auth_refuses_without_credentials(tmp_path, browser):
    (tmp_path / "saves").mkdir()
    proc, url = start_studio(tmp_path, "--auth", "alice:secret-pass")
    try:
        for route in ("/config", "/gradio_api/info"):
            assert httpx.get(url + route, timeout=5).status_code == 401, route
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("button", name=re.compile("Login", re.I)).wait_for()
        shot(page, "auth-login")
        page.close()
    finally:
        stop(proc)


def test_internal_events_are_not_public_api(studio_server):
    info = httpx.get(studio_server["url"] + "/gradio_api/info", timeout=10).json()
    assert not info.get("named_endpoints"), sorted(info.get("named_endpoints", {}))


def test_evaluate_tab_scores_the_offline_benchmark(page, studio_server):
    open_studio(page, studio_server["url"])
    page.get_by_role("tab", name="Evaluate & Predict").click()
    page.get_by_role("button", name="Start evaluation").click()
    page.locator("#eval_results").get_by_text("Average").wait_for(timeout=120_000)
    shot(page, "eval-benchmark")
    results = sorted((studio_server["home"] / "saves").rglob("results.json"))
    assert results, "the job wrote results.json into its run folder"
    data = json.loads(results[-1].read_text())
    assert data["task"] == "studio_bench_test" and data["models"]


def test_chat_tab_streams_and_escapes(page, studio_server):
    open_studio(page, studio_server["url"])
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat_load_button").click()
    page.locator("#chat_status").get_by_text("✅").wait_for(timeout=180_000)
    box = page.locator("#chat_input textarea")
    box.fill("<script>alert(1)</script> hello")
    page.locator("#chat_send_button").click()
    page.locator("[data-testid=bot]").first.wait_for(timeout=60_000)
    user = page.locator("[data-testid=user]").first
    user.get_by_text("<script>alert(1)</script>", exact=False).wait_for(timeout=30_000)
    shot(page, "chat-reply")
    page.locator("#chat_unload_button").click()
    page.locator("#chat_status").get_by_text("memory freed").wait_for(timeout=60_000)


def test_export_tab_merges_and_checks_parity(page, studio_server):
    open_studio(page, studio_server["url"])
    page.get_by_role("tab", name="Export").click()
    page.locator("#export_button").click()
    page.locator("#export_status").get_by_text("Finished").wait_for(timeout=180_000)
    page.wait_for_timeout(1500)  # the parity table arrives with the same poll
    shot(page, "export-parity")
    exports = sorted((studio_server["home"] / "saves").rglob("parity.json"))
    assert exports and json.loads(exports[-1].read_text())["all_match"]
    assert list(exports[-1].parent.glob("model*.safetensors"))
