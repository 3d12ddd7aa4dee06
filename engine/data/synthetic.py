"""Generated media datasets whose answers can only come from the media: checks that a model learns to see or hear.

`color_squares` draws one solid square of a clearly distinct colour on a white background, at a random place and
size, and asks "What colour is the square?". `tones` plays one steady tone of a low, middle or high pitch (more
than an octave apart, each a little detuned), at a random loudness, length and start, and asks "Is the tone low,
middle or high?". In both the question is the same in every row and the answers are balanced, so a model that
ignores the media cannot do better than chance (one in four, one in three); one that reads it can reach every
answer. Files are deterministic for a seed (PNG written without timestamps, WAV has none), so the shipped sets
regenerate byte for byte.
"""

from __future__ import annotations

import math
import random
import wave
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.data.media import PLACEHOLDERS

COLORS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (240, 200, 20)}
BACKGROUND = (255, 255, 255)
QUESTION = "What colour is the square?"
PITCHES = {"low": 150.0, "middle": 400.0, "high": 950.0}  # Hz; far apart on the mel scale a model hears with
TONE_QUESTION = "Is the tone low, middle or high?"


def _balanced(choices: list[str], n: int, rng: random.Random) -> list[str]:
    """`n` answers, each choice equally often, in an order the row index does not give away."""
    names = [choices[i % len(choices)] for i in range(n)]
    rng.shuffle(names)
    return names


def _row(path: Path, relative_to: str | Path | None, kind: str, question: str, answer: str) -> dict:
    """A sharegpt row asking `question` about the file at `path` (shown relative to `relative_to`, else absolute)."""
    shown = path.relative_to(relative_to).as_posix() if relative_to is not None else str(path.absolute())
    return {"messages": [{"role": "user", "content": PLACEHOLDERS[kind] + question},
                         {"role": "assistant", "content": answer}],
            kind: [shown]}


def color_squares(folder: str | Path, n: int, *, seed: int, size: int = 56,
                  relative_to: str | Path | None = None) -> list[dict]:
    """Write `n` PNGs into `folder` and return sharegpt rows (`messages` with role/content, `images`).

    Image paths in the rows are relative to `relative_to` (the dataset folder) when given, else absolute.
    """
    if n < 1 or size < 8:
        raise ValueError("color_squares needs n >= 1 and size >= 8")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for index, name in enumerate(_balanced(list(COLORS), n, rng)):
        side = rng.randint(size // 4, size // 2)
        left, top = rng.randint(0, size - side), rng.randint(0, size - side)
        image = Image.new("RGB", (size, size), BACKGROUND)
        ImageDraw.Draw(image).rectangle((left, top, left + side - 1, top + side - 1), fill=COLORS[name])
        path = folder / f"square_{seed}_{index:03d}.png"
        image.save(path, format="PNG", optimize=True)
        rows.append(_row(path, relative_to, "images", QUESTION, name))
    return rows


def write_tone(path: str | Path, pieces: list[tuple[float, float, float]], *, rate: int = 16000,
               volume: float = 0.4, sample_width: int = 2) -> None:
    """A mono WAV of (start Hz, end Hz, seconds) pieces, each a sweep from start to end (0 Hz: silence), at `rate`
    samples per second, 16-bit (or 8-bit with `sample_width=1`); each tone fades in and out over 10 ms so its edges
    do not click."""
    chunks = []
    for start, end, seconds in pieces:
        t = np.arange(round(seconds * rate)) / rate
        freq = start + (end - start) * t / seconds
        phase = 2 * math.pi * np.cumsum(freq) / rate
        fade = np.minimum(1, np.minimum(t, seconds - t) / 0.01)
        chunks.append(volume * np.sin(phase) * fade if start else np.zeros_like(t))
    wave_form = np.concatenate(chunks)
    if sample_width == 1:  # 8-bit WAV is unsigned, centred on 128
        samples = (wave_form * 127 + 128).round().astype(np.uint8)
    else:
        samples = (wave_form * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(sample_width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def tones(folder: str | Path, n: int, *, seed: int, rate: int = 4000,
          relative_to: str | Path | None = None) -> list[dict]:
    """Write `n` WAV clips into `folder` and return sharegpt rows (`messages` with role/content, `audios`).

    Each clip: up to 0.08 s of silence, then 0.15-0.35 s of one pitch from PITCHES detuned by up to 5%, at a random
    volume. 8-bit samples at 4 kHz keep the shipped files around a kilobyte each (the highest pitch stays below a
    quarter of the rate); loading resamples them. Paths in the rows are relative to `relative_to` (the dataset
    folder) when given, else absolute.
    """
    if n < 1 or rate < 4 * max(PITCHES.values()):
        raise ValueError("tones needs n >= 1 and a rate of at least four times the highest pitch")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for index, name in enumerate(_balanced(list(PITCHES), n, rng)):
        pitch = PITCHES[name] * rng.uniform(0.95, 1.05)
        pieces = [(0.0, 0.0, round(rng.uniform(0.0, 0.08), 3)), (pitch, pitch, round(rng.uniform(0.15, 0.35), 3))]
        path = folder / f"tone_{seed}_{index:03d}.wav"
        write_tone(path, [piece for piece in pieces if piece[2] > 0], rate=rate, volume=rng.uniform(0.2, 0.6),
                   sample_width=1)
        rows.append(_row(path, relative_to, "audios", TONE_QUESTION, name))
    return rows
