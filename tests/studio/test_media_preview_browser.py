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
