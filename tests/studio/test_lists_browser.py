"""In Chromium, on a studio whose STUDIO_HOME has no data/ of its own: an added dataset is still in the Train tab's
list after a reload (and was written under STUDIO_HOME, not into the shipped data), and an evaluation is never
shown by the Train tab after a reload."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runfolder import write_status
from tests.studio.conftest import ROOT, start_studio, stop
from tests.studio.test_browser import open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def bare_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A studio in a fresh STUDIO_HOME holding one finished evaluation and no data/ folder."""
    home = tmp_path_factory.mktemp("bare_home")
    run_dir = home / "saves" / "demo" / "lora" / "eval_2026-01-01-00-00-00"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model_name_or_path: demo\nfinetuning_type: lora\ntask: studio_bench_test\n")
    (run_dir / "results.json").write_text(json.dumps({"models": {}}))
    write_status(run_dir, "finished", pid=1, exit_code=0, task="eval")
    proc, url = start_studio(home)
    yield {"url": url, "home": home}
    stop(proc)


def dataset_options(page) -> list[str]:
    """The dataset picker's options; none while the page-load refresh has not filled it yet (callers retry)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.locator("#dataset input").first.click()
    try:
        page.get_by_role("option").first.wait_for(timeout=5_000)
    except PlaywrightTimeout:
        page.keyboard.press("Escape")
        return []
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [option.strip() for option in options]


def test_an_added_dataset_is_still_listed_after_a_reload(page, bare_studio, tmp_path):
    shipped_registry = (ROOT / "data" / "dataset_info.json").read_bytes()
    open_studio(page, bare_studio["url"])
    upload = tmp_path / "my_notes.json"
    upload.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]), encoding="utf-8")
    open_group(page, "Add your own data")
    page.locator("#upload_file input[type=file]").set_input_files(str(upload))
    page.locator("#upload_message").get_by_text("Columns found").wait_for(timeout=60_000)
    page.locator("#upload_name textarea, #upload_name input").first.fill("my_notes")
    page.get_by_role("button", name="Check and add the dataset").click()
    page.locator("#upload_message").get_by_text("my_notes").wait_for(timeout=60_000)
    page.reload()
    open_studio(page, bare_studio["url"])
    for _ in range(20):  # the page-load refresh may answer a moment after the form is there
        if "my_notes" in dataset_options(page):
            break
        page.wait_for_timeout(500)
    assert "my_notes" in dataset_options(page)
    home: Path = bare_studio["home"]
    assert (home / "data" / "uploads" / "my_notes.json").is_file()
    assert (ROOT / "data" / "dataset_info.json").read_bytes() == shipped_registry
    assert not (ROOT / "data" / "uploads" / "my_notes.json").exists()


def test_the_train_tab_does_not_show_an_evaluation_after_a_reload(page, bare_studio):
    from playwright.sync_api import expect

    open_studio(page, bare_studio["url"])
    page.reload()
    open_studio(page, bare_studio["url"])
    page.wait_for_timeout(2000)  # the page-load reattach and a few timer ticks
    assert re.search("No training run yet", page.locator("#status").inner_text())
    open_group(page, "All runs")
    expect(page.locator("#runs_table")).to_contain_text("Evaluation")  # All runs still lists it, by its kind
