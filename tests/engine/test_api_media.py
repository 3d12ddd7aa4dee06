"""Images, video and audio in the OpenAI-compatible API: content parts read into placeholders plus media (unit),
then the real server answering the official `openai` client about an image (vision demo model) and a text model
refusing one with a 400 that names the message."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from PIL import Image

from engine.inference import READY_PREFIX, InferenceError, protocol
from engine.inference.api import bind_socket, make_server
from engine.inference.protocol import ChatMessage, request_media, to_conversation

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-media-test"

ALL = frozenset({"images", "videos", "audios"})


def png_bytes(color: str = "red", size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def read(raw: list[dict[str, Any]], modalities: frozenset[str] = ALL) -> tuple[list[dict], str | None, dict | None]:
    messages = [ChatMessage(**m) for m in raw]
    conversation, system = to_conversation(messages)
    return conversation, system, request_media(messages, modalities)


def refused(raw: list[dict[str, Any]], modalities: frozenset[str] = ALL) -> InferenceError:
    with pytest.raises(InferenceError) as err:
        read(raw, modalities)
    return err.value


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "high"}}


# ---------------------------------------------------------------- reading parts


def test_text_only_requests_are_read_as_before():
    raw = [{"role": "system", "content": "Be brief."},
           {"role": "user", "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "<image>b"}]}]
    conversation, system, media = read(raw)
    assert conversation == [{"role": "user", "content": "a <image>b"}] and system == "Be brief."
    assert media is None  # nothing for the backend: a text model is called exactly as before


def test_each_media_part_becomes_its_placeholder_in_place_and_its_bytes_or_url_in_order():
    red, blue, clip, wav = png_bytes("red"), png_bytes("blue"), b"GIF89a-not-decoded-here", b"RIFF....WAVEfmt "
    raw = [user(image_part(data_url(red)), {"type": "text", "text": "What differs from"},
                {"type": "image_url", "image_url": "https://example.org/b.png"},  # a bare URL, as some clients send
                {"type": "text", "text": "?"}),
           {"role": "assistant", "content": "Colour."},
           user({"type": "video_url", "video_url": {"url": data_url(clip, "video/mp4")}},
                {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(), "format": "WAV"}},
                {"type": "text", "text": "and these?"}, image_part(data_url(blue)))]
    conversation, _, media = read(raw)
    assert [m["content"] for m in conversation] == ["<image>What differs from<image>?", "Colour.",
                                                    "<video><audio>and these?<image>"]
    assert media == {"images": [red, "https://example.org/b.png", blue], "videos": [clip], "audios": [wav]}


def test_base64_with_line_breaks_is_decoded():
    raw = png_bytes()
    wrapped = "\n".join(base64.b64encode(raw).decode()[i:i + 76] for i in range(0, 200, 76))
    _, _, media = read([user(image_part(f"data:image/png;base64,{wrapped}"))])
    assert media["images"] == [raw]


# ---------------------------------------------------------------- refusals, each naming the message


def test_bad_base64_names_the_message():
    err = refused([{"role": "system", "content": "s"}, user({"type": "text", "text": "hi"}),
                   {"role": "assistant", "content": "yes"}, user(image_part("data:image/png;base64,@@not base64@@"))])
    assert err.key == "api_media_bad_base64" and err.params["number"] == 4
    assert err.message().startswith("Message 4: the data of the 'image_url' part is not valid base64")
    assert refused([user(image_part("data:image/png;base64,"))]).key == "api_media_bad_base64"  # empty


def test_unknown_and_incomplete_parts():
    err = refused([user({"type": "file", "file": {"file_id": "f"}})])
    assert err.key == "api_part_unknown" and "'file'" in err.message()
    assert "text, image_url, video_url, input_audio" in err.message()
    err = refused([user({"type": "image_url", "image_url": {"detail": "low"}})])
    assert err.key == "api_part_missing" and err.params["field"] == "image_url.url"
    err = refused([user({"type": "input_audio", "input_audio": {"format": "wav"}})])
    assert err.key == "api_part_missing" and err.params["field"] == "input_audio.data"
    assert refused([user({"type": "text"})]).key == "api_part_missing"


def test_urls_other_than_data_and_http_are_refused():
    for url in ("/etc/passwd", "file:///etc/passwd", "data:image/png,rawbytes", "ftp://host/a.png"):
        err = refused([user(image_part(url))])
        assert err.key == "api_media_bad_url", url
        assert "Local file paths are not read" in err.message()


def test_audio_format_must_be_one_the_loader_reads():
    err = refused([user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "aiff"}})])
    assert err.key == "api_audio_format" and "wav, mp3" in err.message()


def test_size_and_count_are_capped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(protocol, "MAX_MEDIA_MB", 1)
    big = data_url(b"\0" * (1024 * 1024 + 10))
    err = refused([user({"type": "text", "text": "look"}, image_part(big))])
    assert err.key == "api_media_too_large" and err.params["number"] == 1
    assert "1.0 MB; the limit is 1 MB" in err.message()
    small = image_part(data_url(png_bytes()))
    assert read([user(*[small] * protocol.MAX_MEDIA_ITEMS)])[2]["images"]
    assert refused([user(*[small] * (protocol.MAX_MEDIA_ITEMS + 1))]).key == "api_media_too_many"


def test_media_only_from_the_user():
    err = refused([user(image_part(data_url(png_bytes()))),
                   {"role": "assistant", "content": [image_part(data_url(png_bytes()))]},
                   {"role": "user", "content": "and?"}])
    assert err.key == "api_media_role" and err.params["number"] == 2 and "(assistant)" in err.message()


def test_a_model_is_refused_media_it_does_not_read():
    raw = [{"role": "user", "content": "hi"}, user(image_part(data_url(png_bytes())))]
    err = refused(raw, frozenset())
    assert err.key == "api_content_unsupported"
    assert err.message() == ("Message 2 contains a 'image_url' part, but this model reads text only. "
                             "Send the content as text.")
    audio = user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})
    err = refused([audio], frozenset({"images", "videos"}))
    assert err.key == "api_media_unsupported" and "image_url, video_url" in err.message()


def test_refusals_come_before_any_decoding(monkeypatch: pytest.MonkeyPatch):
    """A text model is refused at the first media part, even when a later part would not decode."""
    decoded = []
    monkeypatch.setattr(protocol, "_decode", lambda *args: decoded.append(args) or b"")
    refused([user(image_part(data_url(png_bytes())), image_part("data:image/png;base64,@@"))], frozenset())
    assert decoded == []


# ---------------------------------------------------------------- over HTTP, with the official client


@contextmanager
def served(backend: Any) -> Iterator[openai.OpenAI]:
    """`backend` behind our API server in a thread on a free loopback port; an `openai` client for it."""
    sock = bind_socket("127.0.0.1", 0)
    server = make_server(backend, sock, KEY, io.StringIO())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield openai.OpenAI(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}/v1", api_key=KEY, max_retries=0,
                            timeout=120)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def file_server(folder: Path) -> Iterator[str]:
    """`folder` served over http on 127.0.0.1 (a free port) by the standard library; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def question(*media: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*media, {"type": "text", "text": "What is in the picture?"}]}]


@pytest.mark.slow
def test_a_text_model_answers_text_and_refuses_an_image_with_a_400(tiny_model_dir: Path):
    from engine.config import config_from_dict
    from engine.inference import load_backend

    backend = load_backend(config_from_dict({"model_name_or_path": str(tiny_model_dir), "max_new_tokens": 4}))
    backend.model_id = "tiny"
    try:
        with served(backend) as client:
            text = [{"role": "user", "content": "Hello"}]
            assert client.chat.completions.create(model="tiny", messages=text, temperature=0).choices
            asked = [*text, {"role": "assistant", "content": "Hi"}, *question(image_part(data_url(png_bytes())))]
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as err:
                    client.chat.completions.create(model="tiny", messages=asked, stream=stream)
                assert err.value.status_code == 400 and err.value.code == "api_content_unsupported"
                assert err.value.body["message"].startswith(
                    "Message 3 contains a 'image_url' part, but this model reads text only")
    finally:
        backend.close()


@pytest.mark.slow
def test_a_vision_template_on_vllm_says_vllm_takes_no_media_yet(tiny_model_dir: Path):
    """Its backend reads nothing yet, but the model would: the refusal is vLLM's own, not "text only"."""
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from engine.inference import Sampling
    from engine.inference.api import create_app
    from engine.inference.vllm_backend import VLLMBackend
    from engine.templates.template import get_template

    # Never started: the request is refused while its prompt is prepared, before the engine would be asked.
    backend = VLLMBackend(None, None, AutoTokenizer.from_pretrained(tiny_model_dir), get_template("qwen2_vl"),
                          Sampling(), "vl", None, 4096)
    with TestClient(create_app(backend)) as http:
        answer = http.post("/v1/chat/completions", json={"model": "vl", "messages": question(
            image_part(data_url(png_bytes())))})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "vllm_media"


@pytest.fixture(scope="module")
def vision_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    """`python -m engine api` serving the vision demo model (built on first use) on a free port, with a key."""
    home = tmp_path_factory.mktemp("vision_api")
    config = home / "infer.yaml"
    config.write_text(yaml.safe_dump({"model_name_or_path": "demo-vision", "template": "qwen2_vl",
                                      "max_new_tokens": 6}))
    env = {**{k: v for k, v in os.environ.items() if k not in ("API_KEY", "API_HOST", "API_PORT")},
           "STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    log = open(home / "server.log", "w+", encoding="utf-8")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([sys.executable, "-m", "engine", "api", str(config), "api_port=0", f"api_key={KEY}",
                             "api_model_name=vision"], cwd=home, stdout=subprocess.PIPE, stderr=log, text=True,
                            env=env)
    line = proc.stdout.readline()  # the ready line, or "" when the server died first
    if not line.startswith(READY_PREFIX):
        proc.kill()
        log.seek(0)
        pytest.fail(f"no ready line (got {line!r}); server log:\n{log.read()[-3000:]}")
    url = line.strip().removeprefix(READY_PREFIX)
    yield openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    log.close()


def ask_vision(client: openai.OpenAI, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
    return client.chat.completions.create(model="vision", messages=messages, temperature=0, **kwargs)


@pytest.mark.slow
def test_the_vision_model_reads_an_image_sent_as_a_data_url(vision_client: openai.OpenAI):
    plain = ask_vision(vision_client, question())
    small = ask_vision(vision_client, question(image_part(data_url(png_bytes("red", (56, 56))))))
    large = ask_vision(vision_client, question(image_part(data_url(png_bytes("red", (112, 112))))))
    # The image reached the model as visual tokens: 28x28 pixels each, so 4 for 56 px and 16 for 112 px, plus the
    # vision start/end markers around them.
    assert small.usage.prompt_tokens - plain.usage.prompt_tokens == 4 + 2
    assert large.usage.prompt_tokens - small.usage.prompt_tokens == 16 - 4
    assert small.choices[0].message.content is not None and small.choices[0].finish_reason in ("stop", "length")
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in ask_vision(
        vision_client, question(image_part(data_url(png_bytes("red", (56, 56))))), stream=True) if chunk.choices)
    assert streamed == small.choices[0].message.content  # greedy: the same reply streamed or not


@pytest.mark.slow
def test_the_vision_model_reads_a_video_sent_as_a_data_url(vision_client: openai.OpenAI):
    frames = [Image.new("RGB", (56, 56), color) for color in ("red", "green", "blue", "white")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=250, loop=0)
    video = {"type": "video_url", "video_url": {"url": data_url(buffer.getvalue(), "image/gif")}}
    plain = ask_vision(vision_client, question())
    seen = ask_vision(vision_client, question(video))
    assert seen.usage.prompt_tokens > plain.usage.prompt_tokens + 2  # frames became visual tokens
    assert seen.choices[0].finish_reason in ("stop", "length")


@pytest.mark.slow
def test_the_vision_model_fetches_an_image_by_http_url(vision_client: openai.OpenAI, tmp_path: Path):
    raw = png_bytes("blue", (84, 84))
    (tmp_path / "blue.png").write_bytes(raw)
    with file_server(tmp_path) as base:
        by_url = ask_vision(vision_client, question(image_part(f"{base}/blue.png")))
        with pytest.raises(openai.BadRequestError) as err:
            ask_vision(vision_client, question(image_part(f"{base}/missing.png")))
    by_data = ask_vision(vision_client, question(image_part(data_url(raw))))
    assert by_url.usage.prompt_tokens == by_data.usage.prompt_tokens
    assert by_url.choices[0].message.content == by_data.choices[0].message.content
    assert err.value.status_code == 400
    assert "missing.png" in err.value.body["message"] and "404" in err.value.body["message"]


@pytest.mark.slow
def test_the_vision_model_refuses_audio_and_bad_base64(vision_client: openai.OpenAI):
    audio = {"type": "input_audio", "input_audio": {"data": base64.b64encode(b"RIFF").decode(), "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as err:
        ask_vision(vision_client, question(audio))
    assert err.value.code == "api_media_unsupported" and "input_audio" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        ask_vision(vision_client, question(image_part("data:image/png;base64,%%%")))
    assert err.value.code == "api_media_bad_base64"
