"""Images in the Chat tab, in Chromium: attached to a message, refused by the text demo model with the text and the
file kept in the box, then read by the vision demo model and shown in the conversation."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.studio.conftest import shot
from tests.studio.test_browser import open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def picture(folder: Path) -> Path:
    path = folder / "red_square.png"
    buffer = io.BytesIO()
    Image.new("RGB", (56, 56), "red").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def load(page) -> None:
    page.locator("#chat_load_button").click()
    page.locator("#chat_status").get_by_text("✅").wait_for(timeout=240_000)


def attach(page, path: Path, text: str) -> None:
    page.locator("#chat_input input[type=file]").set_input_files(str(path))
    page.locator("#chat_input [data-testid=container_el] img").first.wait_for()  # the thumbnail: uploaded
    page.locator("#chat_input textarea").fill(text)


def test_an_image_is_refused_by_a_text_model_then_read_by_the_vision_model(page, studio_server, tmp_path: Path):
    from playwright.sync_api import expect

    image = picture(tmp_path)
    open_studio(page, studio_server["url"])
    page.get_by_role("tab", name="Chat").click()
    expect(page.locator("#chat_input")).to_contain_text("Attach images, videos or audio")

    load(page)  # the text demo model
    attach(page, image, "What colour is this?")
    shot(page, "chat-image-attached")
    page.locator("#chat_send_button").click()
    page.locator("#chat_status").get_by_text("This model reads text only").wait_for(timeout=60_000)
    expect(page.locator("#chat_input textarea")).to_have_value("What colour is this?")  # nothing lost
    expect(page.locator("#chat_input [data-testid=container_el] img")).to_have_count(1)
    expect(page.locator("[data-testid=user]")).to_have_count(0)
    shot(page, "chat-image-text-only-model")

    page.locator("#model_path input, #model_path textarea").first.fill("demo-vision")
    open_group(page, "Advanced settings")
    page.locator("#template input").first.click()
    page.get_by_role("option", name="qwen2_vl", exact=True).click()
    load(page)
    page.locator("#chat_send_button").click()  # the same message, still in the box
    page.locator("[data-testid=bot]").first.wait_for(timeout=120_000)
    user = page.locator("[data-testid=user]")
    expect(user.locator("img")).to_have_count(1)  # the image is shown in the conversation, before the text
    expect(user.last).to_contain_text("What colour is this?")
    expect(page.locator("#chat_input [data-testid=container_el] img")).to_have_count(0)  # the box was emptied
    expect(page.locator("#chat_status")).not_to_contain_text("❌")
    shot(page, "chat-image-vision-reply")
    page.locator("#chat_unload_button").click()
    page.locator("#chat_status").get_by_text("memory freed").wait_for(timeout=60_000)
