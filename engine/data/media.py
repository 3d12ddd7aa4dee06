"""Reading the images, videos and audio that multimodal rows point at, and checking them before training.

A media reference is a local path, an http(s) URL, a `data:` URL, raw bytes, or (images) a PIL image. Pillow and
numpy do the common formats; PyAV (`av`, the `multimodal` extra) is imported only for the containers that need
FFmpeg (mp4/avi/mov/mkv/webm video, mp3/flac/ogg/m4a audio), so a text-only install never pays for it. WAV goes
through the standard library's `wave` and a numpy resampler. Every failure is a DataError that names the file and
the dataset row and says how to fix it; `check_media` runs them all before a launch, so a bad file fails in seconds
rather than mid-epoch.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import math
import os
import urllib.error
import urllib.parse
import urllib.request
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from engine.data.converter import MEDIA_KINDS
from engine.errors import DataError, Phrase
from engine.templates import TEMPLATES
from engine.templates.template import PLUGIN_MODALITIES

KINDS = MEDIA_KINDS
# Overridable as in LLaMA-Factory, for datasets whose text uses other markers.
PLACEHOLDERS = {
    "images": os.getenv("IMAGE_PLACEHOLDER", "<image>"),
    "videos": os.getenv("VIDEO_PLACEHOLDER", "<video>"),
    "audios": os.getenv("AUDIO_PLACEHOLDER", "<audio>"),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
PILLOW_VIDEO_EXTENSIONS = (".gif", ".webp")  # animated; Pillow reads them without FFmpeg
AV_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
AV_AUDIO_EXTENSIONS = (".mp3", ".flac", ".ogg", ".m4a")
EXTENSIONS = {
    "images": IMAGE_EXTENSIONS,
    "videos": PILLOW_VIDEO_EXTENSIONS + AV_VIDEO_EXTENSIONS,
    "audios": (".wav", *AV_AUDIO_EXTENSIONS),
}
URL_TIMEOUT_S = 30
MAX_URL_BYTES = 256 * 2**20
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
_MIME_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg", "image/webp": ".webp", "image/gif": ".gif",
                    "image/bmp": ".bmp", "image/tiff": ".tiff", "video/mp4": ".mp4", "video/webm": ".webm",
                    "video/quicktime": ".mov", "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
                    "audio/mpeg": ".mp3", "audio/flac": ".flac", "audio/ogg": ".ogg", "audio/mp4": ".m4a"}


@dataclass
class _Source:
    """One resolved reference: what messages call it, its format hint, and its bytes or path."""

    kind: str
    name: str
    row: str
    ext: str | None = None  # ".png", …; None: sniffed from the first bytes
    data: bytes | None = None
    path: Path | None = None

    def open(self) -> Any:
        """A binary file object for a decoder."""
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # noqa: SIM115

    def format(self) -> str | None:
        """The extension, or the one the file's first bytes say."""
        if self.ext:
            return self.ext
        with self.open() as f:
            head = f.read(16)
        if head.startswith(b"GIF8"):
            return ".gif"
        if head[:4] == b"RIFF":
            return {b"WEBP": ".webp", b"WAVE": ".wav"}.get(head[8:12])
        return None

    def error(self, key: str, **params: Any) -> DataError:
        """A DataError about this file."""
        return DataError(key, kind=Phrase(f"media_{self.kind}"), file=self.name, row=self.row, **params)


def _shown(text: str) -> str:
    """A reference as messages show it: shortened, so a data: URL or a stray base64 blob does not flood them."""
    return text if len(text) <= 200 else text[:200] + "…"


def _row(row: str | None) -> str:
    """The row named in messages ("-" for media given directly, e.g. in a chat)."""
    return row if row is not None else "-"


def _resolve(ref: Any, kind: str, row: str | None, folder: str | Path | None = None) -> _Source:
    """Turn a reference into a `_Source`, fetching URLs; refuse missing files and unsupported extensions."""
    if isinstance(ref, (bytes, bytearray)):
        return _Source(kind, "<bytes>", _row(row), data=bytes(ref))
    if not isinstance(ref, (str, Path)):
        raise _Source(kind, repr(ref)[:60], _row(row)).error(
            "media_unreadable", reason=f"expected a path, URL or bytes, got {type(ref).__name__}")
    text = str(ref)
    if text.startswith("data:"):
        return _data_url(text, kind, row)
    if text.startswith(("http://", "https://")):
        source = _Source(kind, text, _row(row))
        ext = Path(urllib.parse.urlparse(text).path).suffix.lower()
        source.ext = ext if ext in EXTENSIONS[kind] else None
        source.data = _fetch(source)
        return source
    path = Path(text).expanduser()
    source = _Source(kind, _shown(text), _row(row), ext=path.suffix.lower(), path=path)
    if not _is_file(path):
        looked = Path(folder or Path.cwd()).absolute()
        raise source.error("media_missing", folder=str(looked))
    if source.ext not in EXTENSIONS[kind]:
        raise source.error("media_bad_extension", ext=source.ext or "(none)", allowed=", ".join(EXTENSIONS[kind]))
    return source


def _is_file(path: Path) -> bool:
    """Whether `path` is a file; a name the OS refuses (too long, say) is no file rather than an exception."""
    try:
        return path.is_file()
    except OSError:
        return False


def _data_url(text: str, kind: str, row: str | None) -> _Source:
    """A `data:[mime][;base64],payload` reference, decoded."""
    source = _Source(kind, text[:40] + ("…" if len(text) > 40 else ""), _row(row))  # the payload says nothing
    header, comma, payload = text[5:].partition(",")
    if not comma:
        raise source.error("media_unreadable", reason="a data: URL needs a comma before its payload")
    source.ext = _MIME_EXTENSIONS.get(header.split(";")[0].strip().lower())
    try:
        if header.endswith(";base64"):
            source.data = base64.b64decode(payload, validate=True)
        else:
            source.data = urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as err:
        raise source.error("media_unreadable", reason=f"bad base64 payload ({err})") from None
    return source


def _fetch(source: _Source) -> bytes:
    """The body of an http(s) URL, within URL_TIMEOUT_S and MAX_URL_BYTES."""
    request = urllib.request.Request(source.name, headers={"User-Agent": "llm-studio"})
    limit = f"larger than the {MAX_URL_BYTES // 2**20} MiB limit"
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_URL_BYTES:
                raise source.error("media_url_failed", reason=limit)
            data = response.read(MAX_URL_BYTES + 1)
    except urllib.error.HTTPError as err:
        raise source.error("media_url_failed", reason=f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise source.error("media_url_failed", reason=str(err.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as err:
        raise source.error("media_url_failed", reason=str(err) or type(err).__name__) from None
    if len(data) > MAX_URL_BYTES:
        raise source.error("media_url_failed", reason=limit)
    return data


def _import_av(source: _Source, fmt: str | None) -> Any:
    """PyAV, or a DataError saying which package the file's format needs."""
    try:
        import av
    except ImportError:
        raise source.error("media_needs_av", ext=fmt or "?") from None
    return av


def load_image(ref: Any, *, row: str | None = None) -> Image.Image:
    """An RGB image from a path, URL, data URL, bytes or PIL image; `row` names the dataset row in messages."""
    if isinstance(ref, Image.Image):
        return ref.convert("RGB")
    return _decode_image(_resolve(ref, "images", row))


def _decode_image(source: _Source) -> Image.Image:
    """The image fully decoded, as RGB."""
    try:
        with source.open() as f, Image.open(f) as image:
            return image.convert("RGB")
    except _DECODE_ERRORS as err:
        raise source.error("media_unreadable", reason=str(err) or type(err).__name__) from None


def sample_indices(total: int, seconds: float, fps: float, maxlen: int) -> list[int]:
    """Which of `total` frames to keep for `fps` frames a second: evenly spread, at least 2, at most `maxlen`."""
    count = max(2, min(maxlen, total, math.floor(seconds * fps)))
    return [int(i) for i in np.linspace(0, max(total - 1, 0), count).round()]


def load_video(ref: Any, *, fps: float = 2.0, maxlen: int = 128, row: str | None = None) -> list[Image.Image]:
    """RGB frames sampled at `fps` (at least 2, at most `maxlen`): GIF/WebP through Pillow, others through PyAV."""
    source = _resolve(ref, "videos", row)
    fmt = source.format()
    pick = lambda total, seconds: sample_indices(total, seconds, fps, maxlen)  # noqa: E731
    if fmt in PILLOW_VIDEO_EXTENSIONS:
        return _pillow_frames(source, pick)
    return _av_frames(source, fmt, pick)


def _pillow_frames(source: _Source, pick: Any) -> list[Image.Image]:
    """The frames `pick(total, seconds)` chooses from an animated GIF or WebP (a still one has one frame)."""
    try:
        with source.open() as f, Image.open(f) as image:
            durations = [frame.info.get("duration") or 100 for frame in ImageSequence.Iterator(image)]
            indices = pick(len(durations), sum(durations) / 1000)
            frames = {}
            for index in sorted(set(indices)):
                image.seek(index)
                frames[index] = image.convert("RGB")
    except _DECODE_ERRORS as err:
        raise source.error("media_unreadable", reason=str(err) or type(err).__name__) from None
    return [frames[i] for i in indices]


def _av_frames(source: _Source, fmt: str | None, pick: Any) -> list[Image.Image]:
    """The frames `pick(total, seconds)` chooses from a video container, decoded by PyAV up to the last one."""
    av = _import_av(source, fmt)
    try:
        with source.open() as f, av.open(f) as container:
            if not container.streams.video:
                raise source.error("media_unreadable", reason="the file has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 1)
            if stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / 1e6
            total = stream.frames or max(1, round(seconds * rate))  # some containers do not store a count
            indices = pick(total, seconds or total / rate)
            frames: dict[int, Image.Image] = {}
            for index, frame in enumerate(container.decode(stream)):
                if index in indices:
                    frames[index] = frame.to_image()
                if index >= indices[-1]:
                    break
    except (av.FFmpegError, *_DECODE_ERRORS) as err:
        raise source.error("media_unreadable", reason=str(err) or type(err).__name__) from None
    if not frames:
        raise source.error("media_unreadable", reason="no frame could be decoded")
    # An estimated frame count can overshoot: a missing index takes the last frame decoded before it.
    out, last = [], frames[min(frames)]
    for index in indices:
        last = frames.get(index, last)
        out.append(last)
    return out


def load_audio(ref: Any, *, sampling_rate: int = 16000, row: str | None = None) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at `sampling_rate`: WAV through `wave`, other formats through PyAV."""
    return _decode_audio(_resolve(ref, "audios", row), sampling_rate)


def _decode_audio(source: _Source, sampling_rate: int, *, first_only: bool = False) -> np.ndarray:
    """The samples (`first_only`: PyAV stops after its first decoded frame, enough to know the file opens)."""
    fmt = source.format()
    if fmt == ".wav":
        try:
            with source.open() as f:
                samples, rate = _read_wav(f)
            return resample(samples, rate, sampling_rate)
        except (wave.Error, EOFError) as err:
            # The stdlib reads PCM only; PyAV (when installed) also reads float and compressed WAV.
            try:
                import av  # noqa: F401
            except ImportError:
                raise source.error("media_unreadable", reason=f"{err} (pip install av reads more WAV kinds)") from None
    return _av_audio(source, fmt, sampling_rate, first_only)


def _read_wav(f: Any) -> tuple[np.ndarray, int]:
    """PCM samples of a WAV file as float32 mono, and its sampling rate."""
    with wave.open(f) as w:
        channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v & 0x800000, v - (1 << 24), v) / 2**23).astype(np.float32)
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        x = np.frombuffer(raw, dtype).astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise wave.Error(f"{8 * width}-bit samples are not supported")
    return x.reshape(-1, channels).mean(axis=1), rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling in the frequency domain (no aliasing when downsampling), clipped to [-1, 1]."""
    samples = np.asarray(samples, dtype=np.float32)
    if rate == target or samples.size == 0:
        return np.clip(samples, -1, 1)
    length = max(1, round(samples.size * target / rate))
    spectrum = np.fft.rfft(samples)
    keep = min(spectrum.size, length // 2 + 1)
    out = np.fft.irfft(spectrum[:keep], n=length) * (length / samples.size)
    return np.clip(out, -1, 1).astype(np.float32)


def _av_audio(source: _Source, fmt: str | None, sampling_rate: int, first_only: bool) -> np.ndarray:
    """Samples of a compressed audio file, decoded and resampled to mono float32 by PyAV."""
    av = _import_av(source, fmt)
    chunks = []
    try:
        with source.open() as f, av.open(f) as container:
            if not container.streams.audio:
                raise source.error("media_unreadable", reason="the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
            for frame in container.decode(container.streams.audio[0]):
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
                if first_only:
                    return np.zeros(1, np.float32)
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except (av.FFmpegError, *_DECODE_ERRORS) as err:
        raise source.error("media_unreadable", reason=str(err) or type(err).__name__) from None
    if not chunks:
        raise source.error("media_unreadable", reason="no audio could be decoded")
    return np.clip(np.concatenate(chunks), -1, 1).astype(np.float32)


def probe_media(kind: str, ref: Any, *, row: str | None = None, folder: str | Path | None = None) -> None:
    """Check that one file opens: an image fully decoded, a video's first frame, audio's first samples."""
    source = _resolve(ref, kind, row, folder)
    if kind == "images":
        _decode_image(source)
    elif kind == "audios":
        _decode_audio(source, 16000, first_only=True)
    elif (fmt := source.format()) in PILLOW_VIDEO_EXTENSIONS:
        _pillow_frames(source, lambda total, seconds: [0])
    else:
        _av_frames(source, fmt, lambda total, seconds: [0])


def media_counts(example: dict) -> dict[str, int]:
    """How many images, videos and audio files an example carries."""
    return {kind: len(example.get(kind) or []) for kind in KINDS}


def placeholder_counts(example: dict) -> dict[str, int]:
    """How many `<image>`, `<video>`, `<audio>` placeholders an example's messages hold."""
    texts = [m.get("content") or "" for m in example.get("messages", [])]
    return {kind: sum(text.count(PLACEHOLDERS[kind]) for text in texts) for kind in KINDS}


def templates_reading(kind: str) -> Any:
    """A few registered templates whose models read `kind`, for messages (a phrase when there is none): each media
    plugin's own template first (qwen2_vl, qwen3_vl, llava, ...), in the order the plugins were built."""
    plugins = list(PLUGIN_MODALITIES)
    names = sorted((name for name, template in TEMPLATES.items() if kind in template.modalities),
                   key=lambda name: (TEMPLATES[name].mm_plugin != name, plugins.index(TEMPLATES[name].mm_plugin),
                                     name))
    return ", ".join(names[:3]) if names else Phrase("media_no_template")


def check_media(examples: list[dict], *, modalities: frozenset[str] | None, where: str | Path,
                template: str | None = None) -> None:
    """Refuse, before training, media the run cannot read: counts, files, formats, and what the template reads.

    `modalities`: what the run's template reads (None: unknown, so only files and counts are checked);
    `where`: the folder relative paths were looked up in (named when a file is missing); `template`: its name,
    for messages. URLs are fetched by training, not here (a dataset of URLs would be downloaded twice).
    """
    checked: set[tuple[str, str]] = set()
    for example in examples:
        row = str(example.get("source", "?"))
        media, placeholders = media_counts(example), placeholder_counts(example)
        for kind in KINDS:
            items = example.get(kind) or []
            if items and modalities is not None and kind not in modalities:
                params = {"kind": Phrase(f"media_{kind}"), "file": _shown(str(items[0])), "row": row,
                          "template": template or "?", "suggest": templates_reading(kind)}
                if not modalities:
                    raise DataError("media_template_text_only", **params)
                raise DataError("media_template_kind", reads=", ".join(sorted(modalities)), **params)
            if (items or (modalities and kind in modalities)) and media[kind] != placeholders[kind]:
                raise DataError("media_count_mismatch", row=row, kind=Phrase(f"media_{kind}"), count=media[kind],
                                placeholder=PLACEHOLDERS[kind], placeholders=placeholders[kind], column=kind,
                                files=", ".join(f"'{_shown(str(item))}'" for item in items[:3]) or "-")
            for item in items:
                if (kind, str(item)) in checked or str(item).startswith(("http://", "https://")):
                    continue
                probe_media(kind, item, row=row, folder=where)
                checked.add((kind, str(item)))
