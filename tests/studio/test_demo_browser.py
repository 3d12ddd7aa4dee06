"""Demo mode in Chromium, as on a hosting platform: two visitors (two browser contexts) train, refuse limits,
never see each other's runs, and download their adapter."""

from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from tests.studio.conftest import shot, start_studio, stop
from tests.studio.test_browser import open_group, open_studio, server_has, set_number, set_text

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MAX_STEPS = 12


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """A studio started as Hugging Face Spaces starts it: the platform's variables switch demo mode on."""
    home = tmp_path_factory.mktemp("demo_home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPACE_ID", "someone/llm-studio")
        env.setenv("STUDIO_DEMO_MAX_STEPS", str(MAX_STEPS))
        env.delenv("STUDIO_DEMO", raising=False)
        proc, url = start_studio(home)
    yield {"url": url, "home": home}
    stop(proc)


def visitor(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US", accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return context, page


def start(page) -> str:
    """Press Start and return what it led to: a new refusal message, or the run's status once it shows the run."""
    message, status = page.locator("#start_message"), page.locator("#status")
    before_message, before = message.inner_text(), status.inner_text()
    page.get_by_role("button", name="Start").click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        refusal, text = message.inner_text(), status.inner_text()
        # Gradio's "processing" and timer overlay the old text while the event runs.
        if any(re.match(r"\s*[\d.]+s\b", shown) or "processing" in shown for shown in (refusal, text)):
            page.wait_for_timeout(200)
            continue
        if "❌" in refusal and refusal != before_message:
            return refusal
        if text != before and re.search("Starting|Step|Finished", text):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"nothing changed after Start: {before_message!r} {before!r}")


def open_runs(page) -> None:
    open_group(page, "All runs")
    page.get_by_role("button", name="Refresh list").click()
    page.wait_for_timeout(1500)


def test_two_visitors_are_isolated_and_limited(browser, demo_server, tmp_path):
    context_a, page_a = visitor(browser)
    context_b, page_b = visitor(browser)
    try:
        open_studio(page_a, demo_server["url"])
        banner = page_a.locator("#demo_banner").inner_text()
        assert f"at most {MAX_STEPS} training steps" in banner
        assert not page_a.locator("#dataset_dir").is_visible()  # no folders to type in a demo
        shot(page_a, "demo-visitor-a")

        # The demo model's recommended 30 epochs of identity need far more steps than the demo allows.
        message = start(page_a)
        assert "❌" in message and f"at most {MAX_STEPS}" in message, message
        open_group(page_a, "More settings")
        set_number(page_a, "max_steps", str(MAX_STEPS + 1))
        server_has(page_a, max_steps=MAX_STEPS + 1)
        message = start(page_a)
        assert "❌" in message and "Max steps" in message, message
        set_number(page_a, "max_steps", "6")
        page_a.locator("#run_name textarea, #run_name input").first.fill("visitor_a_run")
        server_has(page_a, max_steps=6)
        assert "❌" not in start(page_a)
        page_a.locator("#status").get_by_text("Finished").wait_for(timeout=180_000)
        shot(page_a, "demo-visitor-a-finished")

        # Visitor B sees none of it, and cannot point a run outside their workspace.
        open_studio(page_b, demo_server["url"])
        open_runs(page_b)
        assert "visitor_a_run" not in page_b.locator("#runs_table").inner_text()
        open_group(page_b, "More settings")
        set_text(page_b, "extra_args", '{"adapter_name_or_path": "/etc"}')
        set_number(page_b, "max_steps", "2")
        server_has(page_b, max_steps=2)
        message = start(page_b)
        assert "❌" in message and "outside your workspace" in message, message
        shot(page_b, "demo-visitor-b")

        # Visitor A finds the run after a reload (same cookie, same workspace) and downloads the adapter.
        page_a.reload()
        open_studio(page_a, demo_server["url"])
        open_runs(page_a)
        assert "visitor_a_run" in page_a.locator("#runs_table").inner_text()
        page_a.locator("#runs_pick input").click()
        page_a.get_by_role("option", name=re.compile("visitor_a_run")).click()
        page_a.get_by_role("button", name="Download weights (.zip)").click()
        link = page_a.locator("#runs_file a").first
        link.wait_for(timeout=30_000)
        with page_a.expect_download() as download:
            link.click()
        saved = tmp_path / "run.zip"
        download.value.save_as(saved)
        assert "visitor_a_run/adapter_model.safetensors" in zipfile.ZipFile(saved).namelist()
        shot(page_a, "demo-visitor-a-download")
    finally:
        context_a.close()
        context_b.close()

    workspaces = [p for p in (Path(demo_server["home"]) / "workspaces").iterdir() if p.name != "_nobody"]
    runs = [p for ws in workspaces for p in (ws / "saves").rglob("status.json")]
    assert len(runs) == 1 and "visitor_a_run" in str(runs[0])  # B's refused run wrote nothing
    assert not (Path(demo_server["home"]) / "saves" / "demo").exists()  # nothing in the shared saves folder
    assert os.environ.get("SPACE_ID") is None  # the platform variables stayed in the server's environment
