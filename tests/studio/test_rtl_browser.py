"""Arabic in Chromium: the page reads right to left, while code, the log, numbers and charts stay left to right;
back in English the page is left to right again."""

from __future__ import annotations

import pytest

from tests.studio.conftest import shot
from tests.studio.test_browser import open_studio, pick_language

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DIRECTION_JS = "(el) => getComputedStyle(el).direction"


def page_direction(page) -> str | None:
    return page.evaluate("() => document.documentElement.getAttribute('dir')")


def test_arabic_reads_right_to_left_and_code_stays_left_to_right(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    assert page_direction(page) is None
    pick_language(page, "العربية")
    page.get_by_text("معدّل التعلّم").first.wait_for()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    assert page.evaluate("() => document.documentElement.lang") == "ar"
    # Sentences and labels read right to left; the command (YAML), the log and number boxes do not.
    assert page.locator("#learning_rate").evaluate(DIRECTION_JS) == "rtl"
    assert page.locator("#subtitle .prose").first.evaluate(DIRECTION_JS) == "rtl"
    page.get_by_role("button", name="معاينة الأمر").click()
    editor = page.locator("#command .cm-editor").first
    expect(editor).to_contain_text("learning_rate")
    assert editor.evaluate(DIRECTION_JS) == "ltr"
    assert page.locator("#log textarea").first.evaluate(DIRECTION_JS) == "ltr"
    assert page.locator("#num_train_epochs input[type=number]").first.evaluate(DIRECTION_JS) == "ltr"
    shot(page, "rtl-train-ar")
    # A code box's label starts on the right, so its copy and download buttons move to the left corner.
    page.get_by_role("tab", name="المحادثة").click()
    label, buttons = page.locator("#tools label").first, page.locator("#tools .top-panel").first
    buttons.wait_for()
    assert buttons.bounding_box()["x"] + buttons.bounding_box()["width"] <= label.bounding_box()["x"] + 1
    assert page.locator("#tools .cm-editor").first.evaluate(DIRECTION_JS) == "ltr"

    page.reload()  # the language is remembered, and with it the direction
    page.get_by_role("tab", name="التدريب").wait_for()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")

    pick_language(page, "English")
    page.get_by_text("Learning rate").first.wait_for()
    expect(page.locator("html")).not_to_have_attribute("dir", "rtl")
    assert page_direction(page) is None
    assert page.locator("#learning_rate").evaluate(DIRECTION_JS) == "ltr"
