"""Pixtral (and the Mistral 3 models built on its encoder): each image keeps its aspect ratio, scaled so its longest
edge fits the processor's limit and both edges are whole patches; it becomes one `[IMG]` per patch (per merged block
of patches for Mistral 3), each row of them closed by `[IMG_BREAK]`, the last row by `[IMG_END]` instead.

transformers' PixtralProcessor needs torchvision, which the CPU install lacks, so this plugin reads the processor's
settings itself: the patch size and Mistral 3's merge from the model's config, the image size limit from the PIL image
processor (whose resize rule the rows and columns follow), the three tokens by name. An export writes them back as
`processor_config.json`, so transformers' processor loads the exported model where torchvision is installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.multimodal.processor_plugin import ProcessorPlugin


class PixtralPlugin(ProcessorPlugin):
    """Pixtral / Mistral 3 (`pixtral`): rows of `[IMG]` tokens, a token count per (rows, columns)."""

    name = "pixtral"

    @classmethod
    def load_processor(cls, path: str, tokenizer: Any, config: Any, hub: dict[str, Any]) -> Any:
        """The settings of transformers' PixtralProcessor, read from the model's config and image processor."""
        from transformers import AutoImageProcessor

        return SimpleNamespace(
            image_processor=AutoImageProcessor.from_pretrained(path, **hub), tokenizer=tokenizer,
            patch_size=int(config.vision_config.patch_size),
            spatial_merge_size=int(getattr(config, "spatial_merge_size", 1) or 1),
            image_token="[IMG]", image_break_token="[IMG_BREAK]", image_end_token="[IMG_END]",
        )

    @classmethod
    def save_processor(cls, processor: Any, folder: Any) -> None:
        """The image processor and PixtralProcessor's `processor_config.json`."""
        processor.image_processor.save_pretrained(folder)
        settings = {"processor_class": "PixtralProcessor", "patch_size": processor.patch_size,
                    "spatial_merge_size": processor.spatial_merge_size, "image_token": processor.image_token,
                    "image_break_token": processor.image_break_token, "image_end_token": processor.image_end_token}
        (Path(folder) / "processor_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    def special_tokens(self) -> tuple[str, ...]:
        return (self.image_token, self.processor.image_break_token, self.processor.image_end_token)

    @property
    def patch(self) -> int:
        """Pixels per image token along each edge (the encoder's patch times the merge of Mistral 3)."""
        return int(self.processor.patch_size) * int(getattr(self.processor, "spatial_merge_size", 1) or 1)

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[Any]]:
        """(rows, columns) of image tokens of each image, after the processor's resizing."""
        import numpy as np
        from transformers.models.pixtral.image_processing_pil_pixtral import get_resize_output_image_size

        longest = int(self.image_processor.size["longest_edge"])
        counts = []
        for image in loaded["images"]:
            height, width = get_resize_output_image_size(np.zeros((image.height, image.width, 3), dtype=np.uint8),
                                                         size=(longest, longest), patch_size=(self.patch, self.patch))
            counts.append((height // self.patch, width // self.patch))
        return {"images": counts}

    def image_text(self, count: Any) -> str:
        rows, columns = count
        breaker, end = self.processor.image_break_token, self.processor.image_end_token
        return ((self.image_token * columns + breaker) * rows)[: -len(breaker)] + end

    def image_tokens(self, count: Any) -> int:
        rows, columns = count
        return rows * columns

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """Pixel values padded to the batch's largest image, and each image's size before padding."""
        import numpy as np
        import torch

        images = [image for loaded in batch for image in loaded["images"]]
        if not images:
            return {}
        result = self.image_processor(images=images, patch_size={"height": self.patch, "width": self.patch},
                                      return_tensors="np")
        return {"pixel_values": torch.from_numpy(np.asarray(result["pixel_values"], dtype=np.float32)),
                "image_sizes": torch.from_numpy(np.asarray(result["image_sizes"], dtype=np.int64))}
