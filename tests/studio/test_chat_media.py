"""Files attached in the Chat tab: which ones are read (Gradio's uploads only, media types, size and count caps),
how they travel to the model server (OpenAI content parts with data URLs), and what a text-only model answers."""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from engine.errors import StudioError
from studio import chat_server, demo_mode
from studio.chat_server import check_attachments, content_parts, stream_reply
from studio.demo_settings import DemoSettings


def write_png(path: Path) -> Path:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path


def refused(paths: list[str], folder: Path) -> StudioError:
    with pytest.raises(StudioError) as err:
        check_attachments(paths, folder)
    return err.value


def test_only_media_uploaded_through_gradio_are_read(tmp_path: Path):
    uploads = tmp_path / "gradio"
    (uploads / "abc").mkdir(parents=True)
    image = write_png(uploads / "abc" / "cat.png")
    assert check_attachments([str(image)], uploads) == [str(image.resolve())]
    outside = write_png(tmp_path / "secret.png")
    assert refused([str(outside)], uploads).key == "chat_file_outside"
    (uploads / "abc" / "link.png").symlink_to(outside)  # inside by name only
    assert refused([str(uploads / "abc" / "link.png")], uploads).key == "chat_file_outside"
    assert refused([str(uploads / "abc" / ".." / ".." / "secret.png")], uploads).key == "chat_file_outside"
    (uploads / "abc" / "notes.txt").write_text("hi")
    err = refused([str(uploads / "abc" / "notes.txt")], uploads)
    assert err.key == "chat_file_type" and ".png" in err.message() and ".wav" in err.message()


def test_count_and_size_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    image = write_png(tmp_path / "a.png")
    err = refused([str(image)] * (chat_server.MAX_CHAT_FILES + 1), tmp_path.parent)
    assert err.key == "chat_too_many_files" and err.params["limit"] == chat_server.MAX_CHAT_FILES
    (tmp_path / "big.wav").write_bytes(b"\0" * (2 * 1024 * 1024))
    monkeypatch.setattr(chat_server, "MAX_CHAT_FILE_MB", 1)
    err = refused([str(tmp_path / "big.wav")], tmp_path.parent)
    assert err.key == "chat_file_too_big" and "'big.wav' is 2.0 MB" in err.message()
    monkeypatch.setattr(chat_server, "MAX_CHAT_FILE_MB", 20)
    monkeypatch.setattr(demo_mode, "_active", DemoSettings(max_upload_mb=0.5))  # the public demo's upload limit
    assert chat_server.attachment_limit_mb() == 0.5
    assert refused([str(tmp_path / "big.wav")], tmp_path.parent).params["limit"] == "0.5"


def test_files_travel_as_data_url_parts_before_the_text(tmp_path: Path):
    image = write_png(tmp_path / "cat.png")
    (tmp_path / "clip.mp4").write_bytes(b"mp4 bytes")
    (tmp_path / "voice.WAV").write_bytes(b"RIFF wav")
    parts = content_parts("Describe them.", [str(image), str(tmp_path / "clip.mp4"), str(tmp_path / "voice.WAV")])
    assert [part["type"] for part in parts] == ["image_url", "video_url", "input_audio", "text"]
    head, data = parts[0]["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data) == image.read_bytes()
    assert parts[1]["video_url"]["url"] == "data:video/mp4;base64," + base64.b64encode(b"mp4 bytes").decode()
    assert parts[2]["input_audio"] == {"data": base64.b64encode(b"RIFF wav").decode(), "format": "wav"}
    assert parts[3] == {"type": "text", "text": "Describe them."}
    assert content_parts("", [str(image)])[-1]["type"] == "image_url"  # a file alone, no empty text part
    with pytest.raises(StudioError) as err:
        content_parts("again", [str(tmp_path / "gone.png")])
    assert err.value.key == "chat_file_missing" and "'gone.png'" in err.value.message()


@pytest.mark.slow
def test_a_text_model_refusing_a_picture_gets_the_chat_tabs_advice(tiny_model_dir: Path, tmp_path: Path):
    from engine.config import config_from_dict
    from engine.inference import load_backend
    from engine.inference.api import bind_socket, make_server

    backend = load_backend(config_from_dict({"model_name_or_path": str(tiny_model_dir), "max_new_tokens": 4}))
    backend.model_id = "studio"  # the name the Chat tab asks for (`engine api` sets it from api_model_name)
    sock = bind_socket("127.0.0.1", 0)
    server = make_server(backend, sock, "k", io.StringIO())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    state = {"url": f"http://127.0.0.1:{sock.getsockname()[1]}", "key": "k"}
    try:
        history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
        # Text goes through as before (a tiny random model may end its reply at once: no text is still an answer).
        replies = list(stream_reply(state, [*history, {"role": "user", "content": "and now?"}], max_tokens=2,
                                    temperature=0))
        assert all(isinstance(reply, str) for reply in replies)
        with pytest.raises(StudioError) as err:
            next(stream_reply(state, [*history, {"role": "user", "content": "What is it?",
                                                 "files": [str(write_png(tmp_path / "x.png"))]}], max_tokens=2))
        assert err.value.key == "chat_model_text_only"
        assert "your text and attached files are still in the box" in err.value.message()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        backend.close()
