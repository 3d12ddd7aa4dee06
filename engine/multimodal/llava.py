"""LLaVA-1.5 and LLaVA-NeXT: each image is a run of `<image>` tokens, one per visual feature.

LLaVA-1.5 crops every image to the vision tower's square, so each fills the same number of tokens; LLaVA-NeXT tiles
it at the best of its grid resolutions and adds a newline feature per row, so the count grows with the image's
shape. Both counts come from the model's processor (see processor_plugin).
"""

from __future__ import annotations

from engine.multimodal.processor_plugin import ProcessorPlugin


class LlavaPlugin(ProcessorPlugin):
    """LLaVA-1.5 (`llava`): a fixed run of `<image>` tokens per image."""

    name = "llava"


class LlavaNextPlugin(ProcessorPlugin):
    """LLaVA-NeXT / LLaVA-1.6 (`llava_next`): a run of `<image>` tokens that depends on the image's shape; the
    processor's `image_sizes` tell the model how to unpad the tiles."""

    name = "llava_next"
