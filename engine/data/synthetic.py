"""Generated image datasets whose answers can only come from the pixels: a check that a vision model learns to see.

`color_squares` draws one solid square of a clearly distinct colour on a white background, at a random place and
size, and asks "What colour is the square?". The question is the same in every row and the colours are balanced,
so a model that ignores the image cannot do better than one in four; one that reads the image can reach every
answer. Files are deterministic for a seed (PNG written without timestamps), so the shipped set regenerates
byte for byte.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from engine.data.media import PLACEHOLDERS

COLORS = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (240, 200, 20)}
BACKGROUND = (255, 255, 255)
QUESTION = "What colour is the square?"


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
    names = [list(COLORS)[i % len(COLORS)] for i in range(n)]
    rng.shuffle(names)  # balanced, in an order the row index does not give away
    rows = []
    for index, name in enumerate(names):
        side = rng.randint(size // 4, size // 2)
        left, top = rng.randint(0, size - side), rng.randint(0, size - side)
        image = Image.new("RGB", (size, size), BACKGROUND)
        ImageDraw.Draw(image).rectangle((left, top, left + side - 1, top + side - 1), fill=COLORS[name])
        path = folder / f"square_{seed}_{index:03d}.png"
        image.save(path, format="PNG", optimize=True)
        shown = path.relative_to(relative_to).as_posix() if relative_to is not None else str(path.absolute())
        rows.append({
            "messages": [{"role": "user", "content": PLACEHOLDERS["images"] + QUESTION},
                         {"role": "assistant", "content": name}],
            "images": [shown],
        })
    return rows
