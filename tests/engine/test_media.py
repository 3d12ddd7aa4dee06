"""Media of multimodal datasets: loading every format, each located error, path resolution, the demo sets."""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import shutil
import subprocess
import sys
import threading
import wave
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.config import load_config
from engine.data import DatasetAttr, convert_rows, load_examples, load_registry
from engine.data import media as media_module
from engine.data.loader import resolve_media
from engine.data.media import (
    PLACEHOLDERS,
    check_media,
    load_audio,
    load_image,
    load_video,
    media_counts,
    placeholder_counts,
)
from engine.data.pipeline import check_local_data
from engine.data.synthetic import COLORS, color_squares
from engine.errors import DataError, error_from_json, error_to_json
from engine.model import families
from engine.templates import get_template
from tests.engine.test_data import raises as data_raises

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
VISION = get_template("qwen2_vl").modalities
RED, GREEN, BLUE = (220, 30, 30), (30, 160, 50), (30, 70, 220)


def raises(key: str, fn, *args, **kwargs) -> DataError:
    """Call fn, expect DataError `key` with every placeholder of its message filled, in English and translated."""
    err = data_raises(key, fn, *args, **kwargs)
    for lang in ("zh", "de"):
        assert not re.search(r"\{[a-z_]+\}", err.message(lang))
    return err


def solid(color: tuple[int, int, int], size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), color)


def write_gif(path: Path, colors: list[tuple[int, int, int]], duration: int) -> Path:
    frames = [solid(c) for c in colors]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2, channels: int = 1) -> Path:
    """PCM WAV of float samples in [-1, 1] (one channel repeated `channels` times)."""
    x = np.repeat(samples[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        raw = ((x * 127) + 128).round().astype(np.uint8).tobytes()
    elif width == 3:
        v = (x * (2**23 - 1)).round().astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
        raw = v.tobytes()
    else:
        raw = (x * (2 ** (8 * width - 1) - 1)).round().astype(f"<i{width}").tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)
    return path


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    return 0.5 * np.sin(2 * math.pi * freq * np.arange(round(seconds * rate)) / rate)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / samples.size)


@pytest.fixture()
def http_folder(tmp_path: Path):
    """A local HTTP server for `tmp_path / "www"`; yields (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- images


def test_images_from_files_bytes_data_urls_and_pil(tmp_path: Path) -> None:
    solid(RED).save(tmp_path / "a.png")
    solid(BLUE).save(tmp_path / "b.jpg", quality=95)
    rgba = Image.new("RGBA", (8, 4), (*GREEN, 255))
    assert load_image(tmp_path / "a.png").getpixel((3, 3)) == RED
    jpeg = load_image(str(tmp_path / "b.jpg"))
    assert jpeg.mode == "RGB" and all(abs(a - b) <= 4 for a, b in zip(jpeg.getpixel((8, 8)), BLUE, strict=True))
    assert load_image(rgba).mode == "RGB" and load_image(rgba).size == (8, 4)
    png = (tmp_path / "a.png").read_bytes()
    assert load_image(png).getpixel((0, 0)) == RED
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert load_image(url).getpixel((0, 0)) == RED


def test_image_errors_name_the_file_the_row_and_the_fix(tmp_path: Path) -> None:
    err = raises("media_missing", load_image, str(tmp_path / "nope.png"), row="pets:4")
    assert "nope.png" in str(err) and "pets:4" in str(err) and "media_dir" in str(err)
    (tmp_path / "notes.txt").write_text("hi")
    err = raises("media_bad_extension", load_image, str(tmp_path / "notes.txt"), row="pets:5")
    assert "notes.txt" in str(err) and "pets:5" in str(err) and ".png" in str(err) and ".jpg" in str(err)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    err = raises("media_unreadable", load_image, str(tmp_path / "broken.png"), row="pets:6")
    assert "broken.png" in str(err) and "pets:6" in str(err)
    err = raises("media_unreadable", load_image, "data:image/png;base64,@@@not base64@@@", row="pets:7")
    assert "data:image/png" in str(err) and "pets:7" in str(err)
    assert "row -)" in str(raises("media_missing", load_image, "gone.png"))  # media not from a dataset row
    blob = "iVBORw0KGgo" * 1000 + ".png"  # base64 pasted without its data: prefix: too long to be a file name
    assert len(str(raises("media_missing", load_image, blob, row="pets:8"))) < 1000
    examples = [{"images": [blob, "https://example.com/a.png"], "source": "pets:8"}]
    resolve_media(examples, tmp_path)
    assert examples[0]["images"] == [blob, "https://example.com/a.png"]


def test_images_from_http_urls_with_timeout_and_size_cap(http_folder, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, base = http_folder
    solid(GREEN, 32).save(folder / "pic.png")
    assert load_image(f"{base}/pic.png").getpixel((5, 5)) == GREEN
    assert load_image(f"{base}/pic.png?size=large").size == (32, 32)  # query strings are not extensions
    err = raises("media_url_failed", load_image, f"{base}/missing.png", row="web:1")
    assert "missing.png" in str(err) and "web:1" in str(err) and "404" in str(err)
    monkeypatch.setattr(media_module, "MAX_URL_BYTES", 10)
    err = raises("media_url_failed", load_image, f"{base}/pic.png", row="web:2")
    assert "limit" in str(err) and "web:2" in str(err)
    err = raises("media_url_failed", load_image, "http://127.0.0.1:9/none.png", row="web:3")
    assert "127.0.0.1:9" in str(err)


# --- videos


def test_gif_frames_are_sampled_at_fps(tmp_path: Path) -> None:
    colors = [RED, GREEN, BLUE, RED, GREEN, BLUE, RED, GREEN]
    gif = write_gif(tmp_path / "clip.gif", colors, duration=250)  # 8 frames, 2 s
    frames = load_video(gif, fps=2.0)
    assert [f.getpixel((1, 1)) for f in frames] == [colors[i] for i in (0, 2, 5, 7)]
    assert all(f.mode == "RGB" for f in frames)
    assert len(load_video(gif, fps=100, maxlen=3)) == 3  # never more than maxlen
    assert len(load_video(gif, fps=100)) == 8  # never more than the video has
    still = write_gif(tmp_path / "still.gif", [RED], duration=100)
    assert [f.getpixel((0, 0)) for f in load_video(still)] == [RED, RED]  # at least two
    webp = tmp_path / "clip.webp"
    solid(RED).save(webp, format="WEBP", save_all=True, append_images=[solid(BLUE)], duration=500, lossless=True)
    assert [f.getpixel((0, 0)) for f in load_video(webp)] == [RED, BLUE]


def write_mp4(path: Path, colors: list[tuple[int, int, int]], rate: int) -> Path:
    av = pytest.importorskip("av")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for color in colors:
            container.mux(stream.encode(av.VideoFrame.from_image(solid(color, 32))))
        container.mux(stream.encode())
    return path


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def test_mp4_through_pyav(tmp_path: Path) -> None:
    colors = [RED, GREEN, BLUE, RED, GREEN, BLUE, RED, GREEN]
    mp4 = write_mp4(tmp_path / "clip.mp4", colors, rate=4)  # 2 s
    frames = load_video(str(mp4), fps=2.0)
    assert len(frames) == 4 and all(f.size == (32, 32) for f in frames)
    assert all(close(f.getpixel((16, 16)), colors[i]) for f, i in zip(frames, (0, 2, 5, 7), strict=True))
    assert len(load_video(mp4.read_bytes(), fps=2.0)) == 4  # bytes: the container is sniffed by PyAV
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 64)
    err = raises("media_unreadable", load_video, str(tmp_path / "junk.mp4"), row="clips:2")
    assert "junk.mp4" in str(err) and "clips:2" in str(err)


def test_a_missing_pyav_is_named_with_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "v.mp4").write_bytes(b"\x00" * 16)
    (tmp_path / "s.mp3").write_bytes(b"\x00" * 16)
    monkeypatch.setitem(sys.modules, "av", None)
    for load, name in ((load_video, "v.mp4"), (load_audio, "s.mp3")):
        err = raises("media_needs_av", load, str(tmp_path / name), row="mm:9")
        for fragment in (name, "mm:9", "pip install av", "multimodal"):
            assert fragment in str(err)
    gif = write_gif(tmp_path / "ok.gif", [RED, BLUE], duration=500)
    assert len(load_video(gif)) == 2  # GIFs never need it
    bad = raises("media_bad_extension", load_video, str(tmp_path / "s.mp3"))
    assert ".mp4" in str(bad) and ".gif" in str(bad)


# --- audio


def test_wav_is_read_mixed_to_mono_and_resampled(tmp_path: Path) -> None:
    stereo = write_wav(tmp_path / "a.wav", tone(440, 0.5, 8000), 8000, channels=2)
    samples = load_audio(stereo)
    assert samples.dtype == np.float32 and samples.shape == (8000,)  # 0.5 s at 16 kHz
    assert abs(peak_hz(samples, 16000) - 440) < 3 and 0.45 < np.abs(samples).max() <= 0.51
    for width in (1, 3, 4):
        path = write_wav(tmp_path / f"w{width}.wav", tone(1000, 0.25, 44100), 44100, width=width)
        down = load_audio(str(path), sampling_rate=16000)
        assert down.shape == (4000,) and abs(peak_hz(down, 16000) - 1000) < 5
    high = load_audio(write_wav(tmp_path / "h.wav", tone(6000, 0.25, 16000), 16000), sampling_rate=8000)
    assert np.abs(high).max() < 0.05  # above the new Nyquist: filtered out, not aliased
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    err = raises("media_unreadable", load_audio, str(tmp_path / "bad.wav"), row="sounds:1")
    assert "bad.wav" in str(err) and "sounds:1" in str(err)


def test_compressed_audio_through_pyav(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    path = tmp_path / "tone.flac"
    samples = (tone(440, 1.0, 22050) * 32767).astype(np.int16)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("flac", rate=22050, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = 22050
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    decoded = load_audio(str(path))
    assert abs(decoded.size - 16000) < 200 and abs(peak_hz(decoded, 16000) - 440) < 3


# --- checking rows before training


def row(source: str, text: str, **media: list[str]) -> dict:
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}],
            "source": source, **{k: media.get(k, []) for k in ("images", "videos", "audios")}}


def test_check_media_counts_files_and_template(tmp_path: Path) -> None:
    solid(RED).save(tmp_path / "a.png")
    a = str(tmp_path / "a.png")
    write_wav(tmp_path / "s.wav", tone(440, 0.1, 16000), 16000)
    good = [row("d:0", "<image>What?", images=[a]), row("d:1", "<image><image>Both?", images=[a, a])]
    check_media(good, modalities=VISION, where=tmp_path, template="qwen2_vl")
    assert media_counts(good[1]) == {"images": 2, "videos": 0, "audios": 0}
    assert placeholder_counts(good[1])["images"] == 2
    err = raises("media_count_mismatch", check_media, [row("d:3", "<image>One", images=[a, a])],
                 modalities=VISION, where=tmp_path)
    for fragment in ("d:3", "1 <image>", "2 file", "a.png", "'images'"):
        assert fragment in str(err)
    rebuilt = error_from_json(json.loads(json.dumps(error_to_json(err))))  # as the launch check hands it over
    assert rebuilt.message("zh") == err.message("zh") and "图片" in rebuilt.message("zh")
    # A template that reads images wants a file for every placeholder, even with none given.
    err = raises("media_count_mismatch", check_media, [row("d:4", "<image>Where is it?")], modalities=VISION,
                 where=tmp_path)
    assert "d:4" in str(err) and "0 file" in str(err)
    check_media([row("d:4", "literal <image> in a text dataset")], modalities=frozenset(), where=tmp_path)
    err = raises("media_template_text_only", check_media, good, modalities=frozenset(), where=tmp_path,
                 template="qwen3")
    for fragment in ("d:0", "a.png", "'qwen3'", "qwen2_vl"):
        assert fragment in str(err)
    sound = [row("d:5", "<audio>Hear?", audios=[str(tmp_path / "s.wav")])]
    err = raises("media_template_kind", check_media, sound, modalities=VISION, where=tmp_path, template="qwen2_vl")
    for fragment in ("d:5", "s.wav", "'qwen2_vl'", "images, videos"):
        assert fragment in str(err)
    check_media(sound, modalities=None, where=tmp_path)  # unknown template: files and counts only
    err = raises("media_missing", check_media, [row("d:6", "<image>?", images=["lost.png"])], modalities=None,
                 where=tmp_path)
    assert "lost.png" in str(err) and "d:6" in str(err) and str(tmp_path) in str(err)
    (tmp_path / "b.png").write_bytes(b"garbage")
    raises("media_unreadable", check_media, [row("d:7", "<image>?", images=[str(tmp_path / "b.png")])],
           modalities=VISION, where=tmp_path)
    check_media([row("d:8", "<image>?", images=["https://example.invalid/x.png"])], modalities=VISION, where=tmp_path)


def test_placeholders_follow_the_environment() -> None:
    code = ("from engine.data.media import PLACEHOLDERS; import sys; "
            "print(PLACEHOLDERS['images'], 'av' in sys.modules, 'torch' in sys.modules)")
    env = {"IMAGE_PLACEHOLDER": "<img>", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["<img>", "False", "False"]  # torch-free; PyAV only when a file needs it
    assert PLACEHOLDERS == {"images": "<image>", "videos": "<video>", "audios": "<audio>"}


# --- datasets: the three formats, media_dir, the launch check


def media_registry(folder: Path, media_dir: Path) -> Path:
    """A registry with one dataset of each formatting, each row pointing at `pics/red.png` (relative)."""
    (media_dir / "pics").mkdir(parents=True, exist_ok=True)
    solid(RED).save(media_dir / "pics" / "red.png")
    folder.mkdir(parents=True, exist_ok=True)
    rows = {
        "a.json": [{"instruction": "<image>Colour?", "output": "red", "images": "pics/red.png"}],
        "s.json": [{"conversations": [{"from": "human", "value": "<image>Colour?"}, {"from": "gpt", "value": "red"}],
                    "images": ["pics/red.png"]}],
        "o.json": [{"messages": [{"role": "user", "content": "<image>Colour?"},
                                 {"role": "assistant", "content": "red"}],
                    "pictures": ["pics/red.png"]}],
    }
    for name, content in rows.items():
        (folder / name).write_text(json.dumps(content), encoding="utf-8")
    registry = {"alp": {"file_name": "a.json", "columns": {"images": "images"}},
                "sg": {"file_name": "s.json", "formatting": "sharegpt", "columns": {"images": "images"}},
                "oa": {"file_name": "o.json", "formatting": "openai", "columns": {"images": "pictures"}}}
    (folder / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return folder


def config(folder: Path, *overrides: str):
    model = [] if any(o.startswith("model_name_or_path=") for o in overrides) else ["model_name_or_path=unused"]
    return load_config(None, [*model, f"dataset_dir={folder}", "output_dir=unused", *overrides])


def test_every_formatting_carries_media_resolved_against_the_dataset_folder(tmp_path: Path) -> None:
    folder = media_registry(tmp_path / "d", tmp_path / "d")
    for name in ("alp", "sg", "oa"):
        (example,) = load_examples(name, folder)
        assert example["images"] == [str((folder / "pics" / "red.png").absolute())], name
        assert example["videos"] == example["audios"] == []
    assert check_local_data(config(folder, "dataset=alp,sg,oa", "template=qwen2_vl")) == 3


def test_media_dir_wins_and_unfound_paths_stay_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = media_registry(tmp_path / "d", tmp_path / "media")
    (example,) = load_examples("sg", folder, media_dir=tmp_path / "media")
    assert example["images"] == [str(tmp_path / "media" / "pics" / "red.png")]
    (example,) = load_examples("sg", folder)  # not in the dataset folder: kept for the check to report
    assert example["images"] == ["pics/red.png"]
    assert check_local_data(config(folder, "dataset=sg", f"media_dir={tmp_path / 'media'}",
                                   "template=qwen2_vl")) == 1
    err = raises("media_missing", check_local_data, config(folder, "dataset=sg", "template=qwen2_vl"))
    assert "pics/red.png" in str(err) and "sg:0" in str(err) and str(folder) in str(err)
    err = raises("media_template_text_only", check_local_data,
                 config(folder, "dataset=sg", f"media_dir={tmp_path / 'media'}", "template=qwen3"))
    assert "'qwen3'" in str(err) and "sg:0" in str(err)
    # No template set: the model registry's for the model, else files and counts only.
    assert check_local_data(config(folder, "dataset=sg", f"media_dir={tmp_path / 'media'}")) == 1
    monkeypatch.setattr(families, "template_for", lambda name: "qwen3" if name == "some/text-model" else None)
    err = raises("media_template_text_only", check_local_data, config(
        folder, "dataset=sg", f"media_dir={tmp_path / 'media'}", "model_name_or_path=some/text-model"))
    assert "'qwen3'" in str(err)
    model = tmp_path / "my-model"  # a local folder that names its template (built demo models write this file)
    model.mkdir()
    (model / "studio_model.json").write_text(json.dumps({"template": "qwen2_vl"}), encoding="utf-8")
    assert check_local_data(config(folder, "dataset=sg", f"media_dir={tmp_path / 'media'}",
                                   f"model_name_or_path={model}")) == 1
    (model / "studio_model.json").write_text(json.dumps({"template": "qwen3"}), encoding="utf-8")
    raises("media_template_text_only", check_local_data, config(
        folder, "dataset=sg", f"media_dir={tmp_path / 'media'}", f"model_name_or_path={model}"))


# --- the shipped demo datasets and their generator


LF_ENTRY_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


def test_demo_datasets_are_registered_as_llamafactory_names_them_and_pass_the_check() -> None:
    registry = load_registry(DATA)
    expected = {"mllm_demo": ["images"], "mllm_video_demo": ["videos"], "mllm_audio_demo": ["audios"],
                "mllm_video_audio_demo": ["videos", "audios"], "mllm_colors": ["images"],
                "mllm_colors_eval": ["images"]}
    for name, kinds in expected.items():
        entry = registry[name]
        assert entry == {"file_name": f"{name}.json", "formatting": "sharegpt",
                         "columns": {"messages": "messages", **{k: k for k in kinds}}, "tags": LF_ENTRY_TAGS}
        examples = load_examples(name, DATA)
        assert examples and all(media_counts(e)[k] for e in examples for k in kinds)
        vision = set(kinds) <= VISION
        check_media(examples, modalities=VISION if vision else None, where=DATA, template="qwen2_vl")
    assert len(load_examples("mllm_colors", DATA)) == 40 and len(load_examples("mllm_colors_eval", DATA)) == 20
    shipped = [p for p in (DATA / "mllm_demo_data").rglob("*") if p.is_file()]
    shipped += list(DATA.glob("mllm_*.json"))
    assert sum(p.stat().st_size for p in shipped) < 200_000


def test_the_generator_rewrites_the_shipped_files_byte_for_byte(tmp_path: Path) -> None:
    shutil.copy(DATA / "dataset_info.json", tmp_path / "dataset_info.json")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_mllm_demo.py"), str(tmp_path)], check=True,
                   capture_output=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(made) > 70
    for relative in made:
        assert (tmp_path / relative).read_bytes() == (DATA / relative).read_bytes(), relative


def test_color_squares_answers_come_only_from_the_pixels(tmp_path: Path) -> None:
    rows = color_squares(tmp_path / "sq", 12, seed=3, size=56, relative_to=tmp_path)
    again = color_squares(tmp_path / "again", 12, seed=3, size=56, relative_to=tmp_path)
    assert [r["messages"] for r in rows] == [r["messages"] for r in again]
    assert len({r["messages"][0]["content"] for r in rows}) == 1  # one question for every row
    answers = [r["messages"][1]["content"] for r in rows]
    assert sorted(answers) == sorted(list(COLORS) * 3)  # balanced
    for r in rows:
        image = load_image(tmp_path / r["images"][0])
        colors = {c for _, c in image.getcolors()} - {(255, 255, 255)}
        assert image.size == (56, 56) and colors == {COLORS[r["messages"][1]["content"]]}
        assert r["messages"][0]["content"].count("<image>") == 1
    for r, twin in zip(rows, again, strict=True):
        assert (tmp_path / r["images"][0]).read_bytes() == (tmp_path / twin["images"][0]).read_bytes()
    other = color_squares(tmp_path / "other", 12, seed=4, relative_to=tmp_path)
    assert [(tmp_path / r["images"][0]).read_bytes() for r in other] != \
        [(tmp_path / r["images"][0]).read_bytes() for r in rows]
    absolute = color_squares(tmp_path / "abs", 1, seed=0)
    assert Path(absolute[0]["images"][0]).is_absolute()


def test_datasets_image_cells_become_data_urls_or_paths(tmp_path: Path) -> None:
    folder = media_registry(tmp_path / "d", tmp_path / "d")
    png = (folder / "pics" / "red.png").read_bytes()
    rows = [{"conversations": [{"from": "human", "value": "<image><image>Same?"}, {"from": "gpt", "value": "yes"}],
             "images": [{"bytes": png, "path": "red.png"}, {"bytes": None, "path": "pics/red.png"}]}]
    (example,) = convert_rows(DatasetAttr("cells", "file", "x.parquet", formatting="sharegpt",
                                          columns={"images": "images"}), rows)
    assert example["images"][0].startswith("data:image/png;base64,") and example["images"][1] == "pics/red.png"
    assert load_image(example["images"][0]).getpixel((0, 0)) == RED
    resolve_media([example], folder)
    check_media([example], modalities=VISION, where=folder)
    json.dumps(example)  # still plain JSON
    rows[0]["images"] = [{"bytes": None, "path": None}]
    err = raises("dataset_bad_rows", convert_rows, DatasetAttr("cells", "file", "x.parquet", formatting="sharegpt",
                                                             columns={"images": "images"}), rows)
    assert err.problems[0][0] == "row_wrong_type"
