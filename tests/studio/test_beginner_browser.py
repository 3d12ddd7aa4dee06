"""In Chromium: a number box steps by its field's metadata and says what is wrong when left; choosing a model
applies its recommended values with a note; advanced settings are folded; screenshots in English and Chinese."""

from __future__ import annotations

import re

import pytest

from tests.studio.conftest import shot
from tests.studio.test_browser import open_studio, pick_language

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_arrow_up_keeps_a_learning_rate(page, studio_server):
    open_studio(page, studio_server["url"])
    box = page.locator("#learning_rate input").first
    assert float(box.input_value()) == 0.005
    box.press("ArrowUp")
    assert float(box.input_value()) == pytest.approx(0.005001)


def test_a_box_that_holds_no_number_says_so(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    box = page.locator("#num_train_epochs input").first
    box.fill("")
    box.press_sequentially("1e-")  # Chromium lets these characters in; the box then holds no number
    box.press("Tab")
    message = page.locator("#num_train_epochs").get_by_text("Type a number here")
    expect(message).to_be_visible(timeout=15_000)
    shot(page, "beginner-number-message")
    box.fill("3")
    box.press("Tab")
    expect(message).to_have_count(0, timeout=15_000)
    page.locator("#per_device_train_batch_size input").first.fill("0")
    page.locator("#per_device_train_batch_size input").first.press("Tab")
    expect(page.locator("#per_device_train_batch_size").get_by_text("Must be at least 1.")).to_be_visible()


def test_choosing_a_model_applies_its_values_and_says_so(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    picker = page.locator("#model_name input")
    picker.click()
    picker.fill("")  # it shows the demo's name until one types
    picker.press_sequentially("qwen2.5-0.5b")  # the picker filters as one types
    expect(page.get_by_role("option")).to_have_count(2)  # the instruct model and its base
    page.get_by_role("option", name=re.compile(r"^Qwen · Qwen2\.5-0\.5B-Instruct")).click()
    note = page.locator("#model_note")
    expect(note).to_contain_text("Learning rate 0.005 → 0.0001", timeout=15_000)
    expect(note).to_contain_text("30 → 3")
    expect(page.locator("#learning_rate input").first).to_have_value("0.0001")
    expect(page.locator("#num_train_epochs input").first).to_have_value("3")
    expect(page.locator("#model_path input, #model_path textarea").first).to_have_value("Qwen/Qwen2.5-0.5B-Instruct")
    shot(page, "beginner-model-note")


def test_top_bar_and_train_tab_in_english_and_chinese(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    expect(page.locator("#template")).to_be_hidden()  # folded under Advanced
    expect(page.locator("#quantization_method")).to_be_hidden()
    page.locator("#model_name input").click()
    shot(page, "beginner-model-picker-en")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Advanced settings").click()
    expect(page.locator("#template")).to_be_visible()
    expect(page.locator("#quantization_method")).to_be_hidden()  # quantization is off
    shot(page, "beginner-top-train-en")
    pick_language(page, "简体中文")
    page.get_by_text("高级设置").first.wait_for()
    page.get_by_text("学习率").first.wait_for()
    shot(page, "beginner-top-train-zh")
    pick_language(page, "English")
    page.get_by_text("Learning rate").first.wait_for()


def test_only_choosing_a_model_replaces_values(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    page.wait_for_timeout(1500)
    assert page.locator("#model_note").inner_text().strip() == ""  # nothing was chosen yet
    page.locator("#model_name input").click()
    page.get_by_role("option", name=re.compile(r"^Qwen · Qwen2\.5-0\.5B-Instruct")).click()
    expect(page.locator("#learning_rate input").first).to_have_value("0.0001", timeout=15_000)
    page.locator("#learning_rate input").first.fill("0.0002")
    page.locator("#learning_rate input").first.press("Tab")
    page.locator("#model_name input").click()  # opened and closed on the same model: nothing is replaced
    page.keyboard.press("Escape")
    page.locator("#learning_rate input").first.click()
    page.wait_for_timeout(1500)
    expect(page.locator("#learning_rate input").first).to_have_value("0.0002")
    pick_language(page, "简体中文")
    page.get_by_text("学习率").first.wait_for()
    page.wait_for_timeout(1500)
    expect(page.locator("#learning_rate input").first).to_have_value("0.0002")
    pick_language(page, "English")
    page.get_by_text("Learning rate").first.wait_for()
