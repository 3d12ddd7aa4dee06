"""Llama 3.2 Vision (Mllama): an image is one `<|image|>` token in the text, and the language model reads its tiles
through cross-attention layers instead of through tokens. Which text positions see which image comes from where the
`<|image|>` tokens are (each image from its token to the next image's, as transformers' processor builds it), so the
`cross_attention_mask` is worked out from the batch's token ids and the tiles each image was cut into.
"""

from __future__ import annotations

from typing import Any

from engine.multimodal.processor_plugin import ProcessorPlugin


class MllamaPlugin(ProcessorPlugin):
    """Llama 3.2 Vision (`mllama`): one token per image, tiles through cross-attention."""

    name = "mllama"

    def token_counts(self, loaded: dict[str, list]) -> dict[str, list[Any]]:
        return {"images": [1] * len(loaded["images"])}

    def features(self, batch: list[dict[str, list]]) -> dict[str, Any]:
        """Tiles of each example's images (padded to the batch's most images and tiles), their aspect-ratio ids and
        which tiles are real."""
        import numpy as np
        import torch

        if not any(loaded["images"] for loaded in batch):
            return {}
        result = self.image_processor(images=[loaded["images"] for loaded in batch], return_tensors="np")
        return {"pixel_values": torch.from_numpy(np.asarray(result["pixel_values"], dtype=np.float32)),
                "aspect_ratio_ids": torch.from_numpy(np.asarray(result["aspect_ratio_ids"], dtype=np.int64)),
                "aspect_ratio_mask": torch.from_numpy(np.asarray(result["aspect_ratio_mask"], dtype=np.int64))}

    def token_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        """`cross_attention_mask` (batch, tokens, images, tiles) from the image tokens' places and each image's tiles
        (the real tiles of `aspect_ratio_mask`); nothing for a batch without images."""
        import torch
        from transformers.models.mllama.processing_mllama import (
            convert_sparse_cross_attention_mask_to_dense,
            get_cross_attention_token_mask,
        )

        tiles = batch.get("aspect_ratio_mask")
        if tiles is None:
            return {}
        rows = batch["input_ids"].tolist()
        dense = convert_sparse_cross_attention_mask_to_dense(
            [get_cross_attention_token_mask(row, self.image_token_id) for row in rows],
            num_tiles=tiles.sum(-1).tolist(), max_num_tiles=int(self.image_processor.max_image_tiles),
            length=len(rows[0]))
        return {"cross_attention_mask": torch.from_numpy(dense).to(batch["input_ids"].device)}
