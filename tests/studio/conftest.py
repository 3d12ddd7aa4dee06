"""One studio server and one Chromium for all browser tests (a fresh STUDIO_HOME; screenshots as artifacts)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Two visitors' pages in one browser: the one not in front must not have its timers and rendering throttled.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(home: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Launch `python -m studio launch` on a free loopback port and wait for HTTP 200 (or 401 with auth)."""
    import httpx

    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(home / "studio.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "studio", "launch", "--port", str(port), *extra], cwd=home,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / "studio.log").read_text()
        try:
            if httpx.get(url + "/", timeout=2).status_code in (200, 401):
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the studio did not answer within 60 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A running studio in a fresh STUDIO_HOME (the demo model builds itself on the first run)."""
    home = tmp_path_factory.mktemp("studio_home")
    (home / "saves").mkdir()
    # The shipped data plus one empty dataset, as a user's own data/ folder (it takes precedence).
    shutil.copytree(ROOT / "data", home / "data")
    registry = json.loads((home / "data" / "dataset_info.json").read_text(encoding="utf-8"))
    registry["empty_set"] = {"file_name": "empty_set.json"}
    (home / "data" / "dataset_info.json").write_text(json.dumps(registry, indent=2), encoding="utf-8")
    (home / "data" / "empty_set.json").write_text("[]", encoding="utf-8")
    proc, url = start_studio(home)
    yield {"url": url, "home": home, "proc": proc}
    stop(proc)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install it with `apt-get install -y chromium fonts-wqy-zenhei` "
                    "(scripts/test.sh does this).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    context.close()


def shot(page, name: str) -> None:
    """Save a screenshot as a test artifact."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
