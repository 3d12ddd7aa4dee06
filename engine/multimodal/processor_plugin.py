"""The shared base of the image families whose transformers processor counts an image's tokens.

LLaVA, LLaVA-NeXT, Gemma 3 and PaliGemma fill a run of one image token with an image's features; how long the run
is comes from the model's own processor (`_get_num_multimodal_tokens`, the count transformers itself expands to), so
the count follows the checkpoint's settings (patch size, feature strategy, tiling) rather than a copy of them here.
A family says only how an image's run is written around the placeholder and which extra inputs its forward takes.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError
from engine.multimodal.media_base import MediaSettings, fit_pixels

_KEEP = ("pixel_values", "image_sizes")  # what the image processors return that the models' forward takes


class ProcessorPlugin:
    """An image family read through its full transformers processor (tokenizer and image processor together)."""

    name = ""
    kinds: tuple[str, ...] = ("images",)
    full_processor = True  # get_plugin hands this class the AutoProcessor, not only the image processor

    def __init__(self, processor: Any, tokenizer: Any, settings: MediaSettings) -> None:
        self.processor = processor
        self.image_processor = processor.image_processor
        self.settings = settings
        vocab = tokenizer.get_vocab()
        missing = [token for token in self.special_tokens() if token not in vocab]
        if missing:
            raise DataError("media_tokens_missing", template=self.name, tokens=", ".join(missing))
        self.image_token_id = vocab[self.image_token]

    @classmethod
    def load_processor(cls, path: str, tokenizer: Any, config: Any, hub: dict[str, Any]) -> Any:
        """The model's processor (transformers' AutoProcessor) around the run's tokenizer."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(path, tokenizer=tokenizer, **hub)

    @classmethod
    def save_processor(cls, processor: Any, folder: Any) -> None:
        """Write the image processor and the processor's own settings (`processor_config.json`: patch size, tokens
        per image, ...) beside an exported model."""
        from pathlib import Path

        processor.image_processor.save_pretrained(folder)
        processor.to_json_file(Path(folder) / "processor_config.json")

    @property
    def image_token(self) -> str:
        """The token the model fills with image features (one per feature)."""
        return str(self.processor.image_token)

    def special_tokens(self) -> tuple[str, ...]:
        """The tokens this family's layout needs in the vocabulary."""
        return (self.image_token,)

    # ------------------------------------------------------------ loading and tokens

    def load(self, media: dict[str, list]) -> dict[str, list]:
        """The images (PIL, scaled to the run's pixel limits) of one example or request."""
        from engine.data.media import load_image
        s = self.settings
        return {"images": [fit_pixels(load_image(ref), s.image_max_pixels, s.image_min_pixels)
                           for ref in media.get("images") or []]}

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[Any]]:
        """How many image tokens each image fills, as the model's processor counts them."""
        sizes = [(image.height, image.width) for image in loaded["images"]]
        if not sizes:
            return {"images": []}
        return {"images": list(self.processor._get_num_multimodal_tokens(image_sizes=sizes).num_image_tokens)}

    def image_text(self, count: Any) -> str:
        """The text that stands for one image of `count` tokens."""
        return self.image_token * int(count)

    def image_tokens(self, count: Any) -> int:
        """How many `image_token`s one image's text holds."""
        return int(count)

    def expand(self, messages: list[dict], counts: dict[str, list], placeholders: dict[str, str]) -> list[dict]:
        """The messages with each image placeholder replaced by that image's tokens, in order."""
        queue = list(counts.get("images") or [])
        placeholder = placeholders["images"]
        out = []
        for message in messages:
            text = message.get("content") or ""
            while placeholder in text and queue:
                text = text.replace(placeholder, self.image_text(queue.pop(0)), 1)
            out.append({**message, "content": text})
        return out

    def prefix_ids(self, counts: dict[str, list]) -> list[int]:
        """Token ids that go before the whole rendered conversation (PaliGemma's images); none for most families."""
        return []

    def expected_tokens(self, counts: dict[str, list]) -> dict[int, int]:
        """Token id → how many of it a fully kept example holds."""
        return {self.image_token_id: sum(self.image_tokens(count) for count in counts.get("images") or [])}

    # ------------------------------------------------------------ tensors

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """The image processor's tensors for every image of a batch, in order."""
        import numpy as np
        import torch

        images = [image for loaded in batch for image in loaded["images"]]
        if not images:
            return {}
        result = self.image_processor(images=images, return_tensors="np")
        out = {}
        for key in _KEEP:
            if key in result:
                value = np.asarray(result[key])
                out[key] = torch.from_numpy(value.astype(np.float32 if value.dtype.kind == "f" else np.int64))
        return out

    def token_type_ids(self, input_ids: Any) -> None:
        """None: these families take no `mm_token_type_ids` (their own inputs come from `token_inputs`)."""
        return None

    def token_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Inputs the forward takes besides the tokens and pixels, worked out from the batch's token ids
        (`input_ids`, and `labels` in training); none for most families."""
        return {}
