"""InternVL (the transformers-format checkpoints, `OpenGVLab/InternVL3*-hf`): each image is cut into up to
`max_patches` square tiles (plus a thumbnail) by the GOT-OCR2 image processor, and becomes `<img>`, a fixed run of
`<IMG_CONTEXT>` tokens per tile (`image_seq_length`), `</img>`.

transformers' InternVLProcessor cannot be built without torchvision (its video processor), so this plugin reads its
settings itself: `image_seq_length` from the model's config, the tile count from the PIL image processor, the three
tokens from the tokenizer (as the processor does). An export writes `processor_config.json` back.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from engine.multimodal.processor_plugin import ProcessorPlugin


class InternVLPlugin(ProcessorPlugin):
    """InternVL 2.5 / 3 / 3.5 (`intern_vl`): images (video is not built)."""

    name = "intern_vl"

    @classmethod
    def load_processor(cls, path: str, tokenizer: Any, config: Any, hub: dict[str, Any]) -> Any:
        from transformers import AutoImageProcessor

        return SimpleNamespace(
            image_processor=AutoImageProcessor.from_pretrained(path, **hub), tokenizer=tokenizer,
            image_seq_length=int(config.image_seq_length),
            start_image_token=getattr(tokenizer, "start_image_token", None) or "<img>",
            end_image_token=getattr(tokenizer, "end_image_token", None) or "</img>",
            image_token=getattr(tokenizer, "context_image_token", None) or "<IMG_CONTEXT>",
        )

    @classmethod
    def save_processor(cls, processor: Any, folder: Any) -> None:
        """The image processor and InternVLProcessor's `processor_config.json`."""
        processor.image_processor.save_pretrained(folder)
        settings = {"processor_class": "InternVLProcessor", "image_seq_length": processor.image_seq_length}
        (Path(folder) / "processor_config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    def special_tokens(self) -> tuple[str, ...]:
        return (self.processor.start_image_token, self.image_token, self.processor.end_image_token)

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[Any]]:
        """`image_seq_length` tokens per tile of each image (the image processor's tiling of its size)."""
        tiles = [self.image_processor.get_number_of_image_patches(image.height, image.width, {})
                 for image in loaded["images"]]
        return {"images": [self.processor.image_seq_length * int(n) for n in tiles]}

    def image_text(self, count: Any) -> str:
        return f"{self.processor.start_image_token}{self.image_token * int(count)}{self.processor.end_image_token}"
