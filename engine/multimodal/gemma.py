"""Gemma 3: each image is `<start_of_image>`, a fixed run of `<image_soft_token>`s, `<end_of_image>`, set off by
blank lines (the processor's `full_image_sequence`); the image tokens attend to each other both ways, which the
model reads from `token_type_ids` (1 on image tokens).
"""

from __future__ import annotations

from typing import Any

from engine.multimodal.processor_plugin import ProcessorPlugin


class Gemma3Plugin(ProcessorPlugin):
    """Gemma 3 (`gemma3`): images only (pan-and-scan crops are not built)."""

    name = "gemma3"

    @property
    def image_token(self) -> str:
        return str(self.processor.tokenizer.image_token)

    def special_tokens(self) -> tuple[str, ...]:
        return (self.processor.boi_token, self.image_token, self.processor.tokenizer.eoi_token)

    def image_text(self, count: Any) -> str:
        return f"\n\n{self.processor.boi_token}{self.image_token * int(count)}{self.processor.tokenizer.eoi_token}\n\n"

    def token_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"token_type_ids": (batch["input_ids"] == self.image_token_id).long()}
