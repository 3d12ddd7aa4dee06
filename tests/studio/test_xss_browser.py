"""In Chromium: markup typed or uploaded by a user (file name, column names, values, dataset and run names, and the
error messages that echo them) is shown as text, and none of it runs."""

from __future__ import annotations

import json

import pytest

from tests.studio.conftest import shot
from tests.studio.test_browser import choose_dataset, open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]

IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"


def text_of(page, elem_id: str, contains: str) -> str:
    """The text of `#elem_id` once it contains `contains` (as text, not as markup)."""
    locator = page.locator(f"#{elem_id}")
    locator.get_by_text(contains, exact=False).first.wait_for(timeout=60_000)
    return locator.inner_text()


def test_user_markup_is_shown_literally_and_never_runs(page, studio_server, tmp_path):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    open_studio(page, studio_server["url"])

    # An uploaded file whose name, column names and values are markup.
    upload = tmp_path / f"{IMG.replace('/', '')}.jsonl"
    upload.write_text(json.dumps({IMG: SCRIPT, "output": IMG, SCRIPT: "x"}) + "\n", encoding="utf-8")
    open_group(page, "Add your own data")
    page.locator("#upload_file input[type=file]").set_input_files(str(upload))
    found = text_of(page, "upload_message", "Columns found")
    assert IMG in found and SCRIPT in found, found

    # A dataset name that is markup is refused, and the refusal shows it as typed.
    page.locator("#upload_name textarea, #upload_name input").first.fill(IMG)
    page.get_by_role("button", name="Check and add the dataset").click()
    refused = text_of(page, "upload_message", "❌")
    assert IMG in refused, refused

    # Bad input whose message echoes it: a run name and a dataset name that are markup.
    run_name = page.locator("#run_name textarea, #run_name input").first
    run_name.fill(f"../{SCRIPT}")
    page.get_by_role("button", name="Start").click()
    status = text_of(page, "start_message", SCRIPT)
    assert "❌" in status, status
    run_name.fill("xss_check")
    choose_dataset(page, IMG)
    page.get_by_role("button", name="Start").click()
    status = text_of(page, "start_message", IMG)
    assert "❌" in status, status
    shot(page, "xss-literal")

    assert page.evaluate("window.__xss") is None
    assert not dialogs
    # Nothing user-made became an element: the only images are the studio's own.
    injected = page.evaluate("Array.from(document.querySelectorAll('img[src=x], script')).filter("
                             "e => /__xss/.test(e.outerHTML)).length")
    assert injected == 0
