"""Google's image models.

Gemma 3: each image is `<start_of_image>`, a fixed run of `<image_soft_token>`s, `<end_of_image>`, set off by blank
lines (the processor's `full_image_sequence`); the image tokens attend to each other both ways, which the model reads
from `token_type_ids` (1 on image tokens).

PaliGemma (1 and 2): the images come before everything, bos included: a fixed run of `<image>` tokens per image, then
the text (as PaliGemma's processor lays it out), so the placeholders leave the text and the run is put in front of
the token ids. `token_type_ids` is 0 on the image tokens, which attend to each other both ways, and 1 on the text (as
LLaMA-Factory does; PaliGemma's processor also opens the prompt both ways, which would let an earlier turn see a
later one).
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


class PaliGemmaPlugin(ProcessorPlugin):
    """PaliGemma 1 and 2 (`paligemma`, `paligemma_chat`): images before the whole conversation."""

    name = "paligemma"

    def expand(self, messages: list[dict], counts: dict[str, list], placeholders: dict[str, str]) -> list[dict]:
        """The messages without their image placeholders (the images go in front of the token ids)."""
        return [{**m, "content": (m.get("content") or "").replace(placeholders["images"], "")} for m in messages]

    def prefix_ids(self, counts: dict[str, list]) -> list[int]:
        return [self.image_token_id] * sum(int(count) for count in counts.get("images") or [])

    def token_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"token_type_ids": (batch["input_ids"] != self.image_token_id).long()}
