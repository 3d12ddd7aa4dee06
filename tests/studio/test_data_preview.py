"""*Look at the data* reads the dataset in a child process, never in the studio's."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import wave
from pathlib import Path
from typing import Any

import pytest

from engine.paths import resource_dir
from studio.data_preview import THUMB_PX, collect, media_html
from studio.tabs.train_data import preview


def test_the_preview_is_read_in_a_child_process(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    import engine.data
    import studio.datasets

    def read_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the studio process read the dataset")

    for module in (engine.data, studio.datasets):
        monkeypatch.setattr(module, "read_rows", read_here)
    rows, _, rendered, summary, histogram = preview(str(resource_dir("data")), ["identity"], str(tiny_model_dir),
                                                    "chatml", 64, 2, False, False, "Studio", "Team", "{}", "en")
    assert len(rows) == 5 and "token-preview" in rendered and "<" not in summary
    assert int(histogram["count"].sum()) > 0


def test_a_preview_that_cannot_read_says_why(tiny_model_dir: Path):
    rows, _, rendered, _, _ = preview(str(resource_dir("data")), ["no_such_set"], str(tiny_model_dir), "chatml", 64,
                                      0, False, False, "", "", "{}", "en")
    assert rows is None and "❌" in rendered and "no_such_set" in rendered


# --- images, videos and audio beside the text

EVIL = '<img src=x onerror="window.__xss=1">.png'


def write_wav(path: Path, seconds: float = 0.2, rate: int = 8000) -> Path:
    """A short sine tone as 16-bit mono PCM, written with the standard library."""
    samples = (int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


def media_folder(root: Path) -> Path:
    """A dataset folder with one sharegpt dataset whose rows name images, an animated GIF video and audio."""
    from PIL import Image

    data = root / "data"
    (data / "media").mkdir(parents=True)
    Image.new("RGB", (640, 480), (200, 30, 30)).save(data / "media" / "red.png")
    frames = [Image.new("RGB", (64, 64), (i * 60, 80, 160)) for i in range(4)]
    frames[0].save(data / "media" / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    write_wav(data / "media" / "tone.wav")
    Image.new("RGB", (8, 8)).save(data / "media" / EVIL)
    (data / "media" / "broken.jpg").write_bytes(b"not an image at all")
    Image.new("RGB", (8, 8)).save(root / "secret.png")  # beside the data folder, not in it

    def chat(text: str) -> list[dict]:
        return [{"role": "user", "content": text}, {"role": "assistant", "content": "An answer."}]

    rows = [
        {"messages": chat("<image>What colour is this?"), "images": ["media/red.png"]},
        {"messages": chat("<video>What moves?<audio>What sound?"), "videos": ["media/clip.gif"],
         "audios": ["media/tone.wav"]},
        {"messages": chat("<image>Look."), "images": [f"media/{EVIL}"]},
        {"messages": chat("<image><image>Two?"), "images": ["media/gone.png"]},
        {"messages": chat("<image>Broken and outside: <image>"), "images": ["media/broken.jpg", "../secret.png"]},
    ]
    (data / "mm.json").write_text(json.dumps(rows), encoding="utf-8")
    columns = {"messages": "messages", "images": "images", "videos": "videos", "audios": "audios"}
    tags = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
    registry = {"mm": {"file_name": "mm.json", "formatting": "sharegpt", "columns": columns, "tags": tags}}
    (data / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return data


def cards_of(data: Path, **request: Any) -> list[dict]:
    answer = collect(str(data), "mm", None, None, 64, 0, False, False, {}, **request)
    return answer["media"]


def test_rows_show_thumbnails_players_and_numbered_placeholders(tmp_path: Path) -> None:
    from PIL import Image

    data = media_folder(tmp_path)
    cards = cards_of(data)
    assert [card["row"] for card in cards] == [0, 1, 2, 3, 4] and cards[0]["selected"]
    image = cards[0]["media"]["images"][0]
    assert image["shown"] == "img" and image["uri"].startswith("data:image/jpeg;base64,")
    thumb = Image.open(io.BytesIO(base64.b64decode(image["uri"].split(",", 1)[1])))
    assert max(thumb.size) <= THUMB_PX  # re-encoded small, not the 640 px original
    video, audio = cards[1]["media"]["videos"][0], cards[1]["media"]["audios"][0]
    assert video["uri"].startswith("data:image/gif;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(video["uri"].split(",", 1)[1]))).n_frames > 1
    assert audio["shown"] == "audio" and audio["uri"].startswith("data:audio/wav;base64,")

    page = media_html(cards, "en")
    assert page.count("<img ") >= 3 and "<audio controls" in page
    # Each placeholder became a chip numbered like its file; the texts around them are still there.
    assert page.count('class="media-chip media-chip-images"') >= 4
    assert "🖼 image 1" in page and "🎬 video 1" in page and "🔊 audio 1" in page
    assert "image 1</span>What colour is this?" in page and "&lt;image&gt;What colour" not in page


def test_missing_broken_outside_and_miscounted_media_are_explained_inline(tmp_path: Path) -> None:
    data = media_folder(tmp_path)
    cards = cards_of(data)
    missing = cards[3]["media"]["images"][0]
    assert missing["uri"] is None and missing["note"][0] == "data.media.missing"
    broken, outside = cards[4]["media"]["images"]
    assert broken["uri"] is None and broken["error"]["params"]["file"].endswith("broken.jpg")
    assert outside["uri"] is None and outside["note"][0] == "data.media.outside"
    page = media_html(cards, "en")
    assert "'media/gone.png' is not there" in page and "dataset folder" in page
    assert "lies outside the dataset folder" in page and "secret.png" in page
    assert "The file 'media/broken.jpg' (image, row mm:4) cannot be decoded" in page
    assert str(data) not in page and "Traceback" not in page
    assert "The text holds 2 &lt;image&gt; mark(s), but the row lists 1 such file(s)" in page
    assert "background:#fee2e2" in page  # the second <image> of row 3 has no file: a red chip


def test_a_file_name_that_is_markup_stays_text(tmp_path: Path) -> None:
    page = media_html(cards_of(media_folder(tmp_path)), "en")
    assert "onerror=&quot;window.__xss=1&quot;" in page
    assert '<img src=x' not in page and 'onerror="' not in page


def test_links_out_of_the_allowed_folders_are_not_followed_in_the_demo(tmp_path: Path) -> None:
    data = media_folder(tmp_path)
    (data / "media" / "linked.png").symlink_to(tmp_path / "secret.png")
    rows = json.loads((data / "mm.json").read_text(encoding="utf-8"))
    rows[0]["images"] = ["media/linked.png"]
    (data / "mm.json").write_text(json.dumps(rows), encoding="utf-8")
    assert cards_of(data)[0]["media"]["images"][0]["shown"] == "img"  # a workstation user's own link
    refused = cards_of(data, link_roots=[str(data)])[0]["media"]["images"][0]
    assert refused["uri"] is None and refused["note"][0] == "data.media.outside"
    # media_dir moves where relative paths start, and is itself an allowed folder.
    assert cards_of(data, media_dir=str(data / "media"))[0]["media"]["images"][0]["note"][0] == "data.media.missing"


def test_audio_over_the_cap_is_named_not_embedded(tmp_path: Path) -> None:
    data = media_folder(tmp_path)
    audio = cards_of(data, embed_mb=0.001)[1]["media"]["audios"][0]
    assert audio["uri"] is None and audio["note"][0] == "data.media.too_big"
    assert "tone.wav" in media_html(cards_of(data, embed_mb=0.001), "en")


def test_the_train_tab_preview_shows_the_media_beside_the_text(tmp_path: Path, tiny_model_dir: Path) -> None:
    data = media_folder(tmp_path)
    rows, media, rendered, _, _ = preview(str(data), ["mm"], str(tiny_model_dir), "chatml", 64, 1, False, False,
                                          "", "", "{}", "en")
    assert len(rows) == 5 and "media-card" in media and "<audio controls" in media
    assert 'style="border:2px solid #2563eb;' in media.split("Row 1")[0].rsplit("media-card", 1)[1]
    assert "token-preview" in rendered
    # A text dataset has no media section.
    _, media, _, _, _ = preview(str(resource_dir("data")), ["identity"], str(tiny_model_dir), "chatml", 64, 0,
                                False, False, "", "", "{}", "en")
    assert media == ""


def test_the_demo_reads_media_only_from_its_own_and_the_shipped_folders(studio_home: Path) -> None:
    from engine.errors import StudioError
    from studio.demo_settings import DemoSettings
    from studio.tabs.train_data import _media_request

    demo = DemoSettings()
    request = _media_request("data", "{}", demo)
    assert request["link_roots"][0] == str(studio_home) and request["embed_mb"] < _media_request("data", "{}",
                                                                                                 None)["embed_mb"]
    assert "link_roots" not in _media_request("data", '{"media_dir": "/etc"}', None)  # a workstation's own choice
    with pytest.raises(StudioError) as err:
        _media_request("data", '{"media_dir": "/etc"}', demo)
    assert err.value.key == "demo_path_outside"
