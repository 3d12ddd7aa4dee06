"""In Chromium: picking the vision demo shows the Images, video and audio group with the projector switch off and
its dataset chosen; a text model hides the group again; screenshots of the group in English and Chinese."""

from __future__ import annotations

import re

import pytest

from tests.studio.conftest import shot
from tests.studio.test_browser import open_studio, pick_language

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def pick_model(page, name: str) -> None:
    picker = page.locator("#model_name input")
    picker.click()
    picker.fill("")  # it shows the current model's name until one types
    picker.press_sequentially(name.split()[0])
    page.get_by_role("option", name=re.compile(rf"^{re.escape(name)}")).click()


def test_the_vision_demo_shows_the_media_group_with_its_values(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    group = page.locator("#group_media")
    expect(group).to_be_hidden()  # the text demo's template reads no media
    pick_model(page, "Demo vision model")
    expect(group).to_be_visible(timeout=15_000)
    expect(page.locator("#model_note")).to_contain_text("Keep the projector fixed")
    expect(page.locator("#dataset")).to_contain_text("mllm_colors")
    group.get_by_text("Images, video and audio").click()
    expect(page.locator("#freeze_multi_modal_projector input")).not_to_be_checked()
    expect(page.locator("#freeze_vision_tower input")).to_be_checked()
    expect(page.locator("#freeze_language_model input")).not_to_be_checked()
    expect(page.locator("#image_max_pixels input").first).to_have_value("589824")
    expect(page.locator("#video_maxlen input").first).to_be_visible()
    expect(page.locator("#media_audios")).to_be_hidden()  # Qwen2-VL hears nothing
    expect(page.locator("#audio_sampling_rate")).to_be_hidden()
    group.scroll_into_view_if_needed()
    shot(page, "train-media-group-en")
    pick_language(page, "简体中文")
    expect(group.get_by_text("图像、视频和音频")).to_be_visible(timeout=15_000)
    expect(group.get_by_text("固定投影器")).to_be_visible()
    group.scroll_into_view_if_needed()
    shot(page, "train-media-group-zh")
    pick_language(page, "English")
    expect(group.get_by_text("Images, video and audio")).to_be_visible(timeout=15_000)
    pick_model(page, "Demo (offline)")
    expect(group).to_be_hidden(timeout=15_000)
