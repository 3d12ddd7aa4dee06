"""In Chromium: a multimodal dataset's preview shows each row's text with its placeholders as numbered chips,
beside the image thumbnails, the animated video and the audio player they stand for."""

from __future__ import annotations

import pytest

from tests.studio.conftest import ARTIFACTS, shot
from tests.studio.test_browser import choose_dataset, open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_the_preview_shows_rows_beside_their_media(page, studio_server) -> None:
    open_studio(page, studio_server["url"])
    choose_dataset(page, "mllm_video_audio_demo")
    open_group(page, "Look at the data")
    page.get_by_role("button", name="Show the first chosen dataset").click()
    preview = page.locator("#preview_media")
    preview.locator(".media-card").first.wait_for(timeout=120_000)
    first = preview.locator(".media-card").first
    assert "video 1" in first.inner_text() and "audio 1" in first.inner_text()
    # The chips stand where the placeholders were; the media render (decoded by the browser, not broken).
    assert "<video>" not in first.inner_text() and "<audio>" not in first.inner_text()
    gif = first.locator(".media-videos img").first
    assert gif.evaluate("img => img.complete && img.naturalWidth > 0")
    assert first.locator(".media-audios audio").count() == 1
    assert preview.locator(".media-note").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#group_preview").screenshot(path=str(ARTIFACTS / "media-preview.png"))
    shot(page, "media-preview-page")


def test_a_zip_with_images_is_added_and_shown(page, studio_server, tmp_path) -> None:
    import io
    import json
    import zipfile

    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (120, 80), (30, 160, 90)).save(image, "PNG")
    rows = [{"messages": [{"role": "user", "content": "<image>Which colour?"},
                          {"role": "assistant", "content": "Green."}], "images": ["pics/green.png"]}]
    upload = tmp_path / "zipped_colours.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr("colours/train.json", json.dumps(rows))
        archive.writestr("colours/pics/green.png", image.getvalue())
    open_studio(page, studio_server["url"])
    open_group(page, "Add your own data")
    page.get_by_test_id("openai-radio-label").click()  # before the file: the mapping is guessed for the format
    page.locator("#upload_file input[type=file]").set_input_files(str(upload))
    page.locator("#upload_message").get_by_text("Columns found").wait_for(timeout=60_000)
    page.locator("#upload_name textarea, #upload_name input").first.fill("zipped_colours")
    page.get_by_role("button", name="Check and add the dataset").click()
    card = page.locator("#upload_preview .media-card").first
    card.wait_for(timeout=60_000)
    assert "image 1" in card.inner_text() and "Which colour?" in card.inner_text()
    assert card.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert (studio_server["home"] / "data" / "pics" / "green.png").is_file()
    page.locator("#group_upload").screenshot(path=str(ARTIFACTS / "media-upload.png"))
