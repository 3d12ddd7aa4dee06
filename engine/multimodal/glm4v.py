"""GLM-4.1V and GLM-4.5V / 4.6V (Zhipu): Qwen2-VL's patching (14-px patches merged 2x2, frames paired in time) with
GLM's own tokens: an image is `<|begin_of_image|>`, one `<|image|>` per merged block, `<|end_of_image|>`. The model
places its rotary positions from `mm_token_type_ids` (1 on image tokens).

transformers' Glm4vProcessor cannot be built without torchvision (its video processor), so the image processor (PIL)
and the tokenizer's image token are read directly; video is not built.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from engine.multimodal.processor_plugin import ProcessorPlugin

BEGIN, END = "<|begin_of_image|>", "<|end_of_image|>"


class Glm4vPlugin(ProcessorPlugin):
    """GLM-4.1V / GLM-4.5V (`glm4v`, `glm4_5v`): images."""

    name = "glm4v"

    @classmethod
    def load_processor(cls, path: str, tokenizer: Any, config: Any, hub: dict[str, Any]) -> Any:
        from transformers import AutoImageProcessor

        return SimpleNamespace(image_processor=AutoImageProcessor.from_pretrained(path, **hub), tokenizer=tokenizer,
                               image_token=getattr(tokenizer, "image_token", None) or "<|image|>")

    @classmethod
    def save_processor(cls, processor: Any, folder: Any) -> None:
        processor.image_processor.save_pretrained(folder)

    def special_tokens(self) -> tuple[str, ...]:
        return (BEGIN, self.image_token, END)

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[Any]]:
        """One token per merged block of the image's patches, after the image processor's own resizing (its
        `smart_resize`: whole merged blocks, the area within the processor's pixel limits)."""
        from transformers.models.glm4v.image_processing_pil_glm4v import smart_resize

        processor = self.image_processor
        block = int(processor.patch_size) * int(processor.merge_size)
        temporal = int(processor.temporal_patch_size)
        counts = []
        for image in loaded["images"]:
            height, width = smart_resize(num_frames=temporal, height=image.height, width=image.width,
                                         temporal_factor=temporal, factor=block,
                                         min_pixels=processor.size["shortest_edge"],
                                         max_pixels=processor.size["longest_edge"])
            counts.append((height // block) * (width // block))
        return {"images": counts}

    def image_text(self, count: Any) -> str:
        return f"{BEGIN}{self.image_token * int(count)}{END}"

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """Patch rows of every image and each image's (time, height, width) grid."""
        import numpy as np
        import torch

        images = [image for loaded in batch for image in loaded["images"]]
        if not images:
            return {}
        result = self.image_processor(images=images, return_tensors="np")
        return {"pixel_values": torch.from_numpy(np.asarray(result["pixel_values"], dtype=np.float32)),
                "image_grid_thw": torch.from_numpy(np.asarray(result["image_grid_thw"], dtype=np.int64))}

    def token_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """transformers' `mm_token_type_ids`: 1 on image tokens, 0 elsewhere."""
        return {"mm_token_type_ids": (batch["input_ids"] == self.image_token_id).long()}
