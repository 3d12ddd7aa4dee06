"""What every media plugin shares, torch-free: the media kinds, the run's media limits and the pixel fit.

A module of its own below the plugins, so that the family modules and the plugin registry (`plugins.py`, which
imports every family) depend on it and not on each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("images", "videos", "audios")
TOKEN_TYPES = {"images": 1, "videos": 2, "audios": 3}  # transformers' mm_token_type_ids values


@dataclass(frozen=True)
class MediaSettings:
    """The run's media limits (LLaMA-Factory's processor keys)."""

    image_max_pixels: int = 768 * 768
    image_min_pixels: int = 32 * 32
    video_max_pixels: int = 256 * 256
    video_min_pixels: int = 16 * 16
    video_fps: float = 2.0
    video_maxlen: int = 128
    audio_sampling_rate: int = 16000

    @classmethod
    def from_model_args(cls, model_args: Any) -> MediaSettings:
        return cls(**{name: getattr(model_args, name) for name in cls.__dataclass_fields__})


def fit_pixels(image: Any, max_pixels: int, min_pixels: int) -> Any:
    """`image` scaled (keeping its shape) so its area lies within [min_pixels, max_pixels]."""
    width, height = image.size
    area = width * height
    if area > max_pixels:
        factor = math.sqrt(max_pixels / area)
    elif area < min_pixels:
        factor = math.sqrt(min_pixels / area)
    else:
        return image
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return image.resize(size)
