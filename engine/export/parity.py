"""Check an export: the same fixed prompts, answered greedily by the original and by the exported model.

The original (base + adapters, as loaded for the export) answers before the merge; the export is then loaded
from its folder, as any user would load it, and answers the same prompts. `parity.json` records per prompt both
answers and whether their tokens match. A merged export in the same dtype matches; a quantized one (GPTQ) may
drift, which the file shows rather than hides.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PARITY_FILE = "parity.json"
PARITY_PROMPTS = (
    "Hello! Who are you?",
    "Give me three tips for staying healthy.",
    "What is 12 times 7?",
    "Write a haiku about the sea.",
)
MAX_NEW_TOKENS = 16


def prompt_ids(template: Any, tokenizer: Any, prompt: str) -> list[int]:
    """The token ids of one user prompt rendered with the template, ending with the assistant header."""
    from engine.templates import render_prompt_ids

    return list(render_prompt_ids(template, tokenizer, [{"role": "user", "content": prompt}]))


def greedy_answers(model: Any, tokenizer: Any, template: Any, prompts: tuple[str, ...] = PARITY_PROMPTS,
                   max_new_tokens: int = MAX_NEW_TOKENS) -> list[list[int]]:
    """The generated token ids for each prompt (greedy, one prompt at a time so no padding is involved)."""
    import torch

    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        ids = torch.tensor([prompt_ids(template, tokenizer, prompt)], device=device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=_stop_ids(tokenizer, template))
        answers.append(out[0, ids.shape[1]:].tolist())
    return answers


def _stop_ids(tokenizer: Any, template: Any) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] + [vocab[w] for w in template.stop_words if w in vocab]
    return list(dict.fromkeys(i for i in ids if i is not None))


def load_exported(folder: Path, dtype: Any) -> Any:
    """The exported model loaded from its folder with transformers (a media model with its encoder), in eval mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.multimodal.parts import is_media_config, media_model_class

    config = AutoConfig.from_pretrained(folder)
    model_class = media_model_class(config) if is_media_config(config) else AutoModelForCausalLM
    return model_class.from_pretrained(folder, dtype=dtype).eval()


def _first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def compare(original: list[list[int]], exported: list[list[int]], tokenizer: Any,
            prompts: tuple[str, ...] = PARITY_PROMPTS) -> dict[str, Any]:
    """The parity report: per prompt both answers (text and ids) and whether they match."""
    rows = []
    for prompt, a, b in zip(prompts, original, exported, strict=True):
        rows.append({"prompt": prompt, "match": a == b, "first_difference": _first_difference(a, b),
                     "original": tokenizer.decode(a, skip_special_tokens=True),
                     "exported": tokenizer.decode(b, skip_special_tokens=True),
                     "original_ids": a, "exported_ids": b})
    matched = sum(row["match"] for row in rows)
    return {"all_match": matched == len(rows), "matched": matched, "total": len(rows),
            "max_new_tokens": MAX_NEW_TOKENS, "decoding": "greedy", "prompts": rows}


def write_parity(folder: Path, report: dict[str, Any]) -> Path:
    """Write parity.json into the export folder."""
    path = folder / PARITY_FILE
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    logger.info("Parity: %d of %d prompts give the same greedy answer.", report["matched"], report["total"])
    return path
