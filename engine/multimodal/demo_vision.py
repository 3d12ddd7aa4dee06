"""The offline vision demo model: a tiny Qwen2-VL (vision tower, merger, language model) built locally in seconds.

`model_name_or_path: demo-vision` resolves to the built folder, as `demo` does for the text model. The folder is a
real Qwen2-VL checkpoint: `config.json`, `model.safetensors`, a byte-level BPE tokenizer trained on the shipped
demo data with Qwen2-VL's vision tokens, `preprocessor_config.json` for the image processor, and the chat template,
so it loads with transformers' Auto classes like any hub model of that architecture. Images are kept small
(56-224 px, 4-64 visual tokens) so a CPU trains on them in seconds.

The build is deterministic and atomic, and shares the text demo's fingerprinting and locking (engine.model.demo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.model.demo import EOS_TOKEN, IM_END
from engine.multimodal.demo_build import build_media_demo, demo_main, finish_build, media_tokenizer
from engine.paths import vision_demo_dir

__all__ = ["DEMO_VISION_NAME", "VISION_TOKENS", "build_vision_demo", "main", "vision_demo_dir"]

DEMO_VISION_NAME = "demo-vision"
"""The reserved `model_name_or_path` that resolves to the locally built vision demo model."""

BUILD_VERSION = 1
_BUILDER = "demo-vision"
TEMPLATE = "qwen2_vl"

VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
VISION_TOKENS = (VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)

# Qwen2-VL's preprocessing at a small scale: 14-px patches merged 2x2, so each visual token covers 28x28 pixels.
_PATCH, _MERGE, _TEMPORAL = 14, 2, 2
_MIN_PIXELS, _MAX_PIXELS = 56 * 56, 224 * 224
_MEAN = [0.48145466, 0.4578275, 0.40821073]  # the CLIP statistics Qwen2-VL normalises with
_STD = [0.26862954, 0.26130258, 0.27577711]

_PARAMS = {
    "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 384,
    "vocab_size": 4096, "max_position_embeddings": 4096, "vision_depth": 2, "vision_embed_dim": 64,
    "vision_heads": 4, "seed": 42,
}


def _build_into(folder: Path, params: dict[str, int], texts: list[str], info: dict[str, Any]) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer, ids = media_tokenizer(texts, params, VISION_TOKENS)
    hidden = params["hidden_size"]
    head_dim = hidden // params["num_heads"]
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": params["intermediate_size"],
            "num_hidden_layers": params["num_layers"], "num_attention_heads": params["num_heads"],
            "num_key_value_heads": params["num_kv_heads"], "max_position_embeddings": params["max_position_embeddings"],
            # M-RoPE splits each head's rotary half into (time, height, width) sections.
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [head_dim // 8, head_dim // 8 * 3 // 2, head_dim // 8 * 3 // 2]},
            "initializer_range": hidden ** -0.5, "bos_token_id": None, "eos_token_id": ids[IM_END],
            "pad_token_id": ids[EOS_TOKEN], "tie_word_embeddings": True,
        },
        vision_config={
            "depth": params["vision_depth"], "embed_dim": params["vision_embed_dim"], "hidden_size": hidden,
            "num_heads": params["vision_heads"], "mlp_ratio": 2, "patch_size": _PATCH, "spatial_merge_size": _MERGE,
            "temporal_patch_size": _TEMPORAL,
        },
        image_token_id=ids[IMAGE_PAD], video_token_id=ids[VIDEO_PAD], vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END], tie_word_embeddings=True, dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params["seed"])
        model = Qwen2VLForConditionalGeneration(config)
    model = model.to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=[ids[IM_END], ids[EOS_TOKEN]],
                                               pad_token_id=ids[EOS_TOKEN])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    Qwen2VLImageProcessorPil(
        min_pixels=_MIN_PIXELS, max_pixels=_MAX_PIXELS, patch_size=_PATCH, merge_size=_MERGE,
        temporal_patch_size=_TEMPORAL, image_mean=_MEAN, image_std=_STD,
    ).save_pretrained(folder)
    finish_build(folder, model, tokenizer, ids, info)


def build_vision_demo(out_dir: str | Path | None = None, *, force: bool = False,
                      data_dir: str | Path | None = None) -> Path:
    """Build the vision demo model into `out_dir` (default saves/models/demo-vision) and return the folder; an
    identical finished build is reused unless `force`."""
    return build_media_demo(_build_into, builder=_BUILDER, version=BUILD_VERSION, template=TEMPLATE, params=_PARAMS,
                            out_dir=out_dir if out_dir is not None else vision_demo_dir(), force=force,
                            data_dir=data_dir)


def main(argv: list[str] | None = None) -> int:
    """`studio demo-model --vision [DIR] [--force]`: build (or find) the vision demo and print its folder."""
    return demo_main(argv, flag="vision", name=DEMO_VISION_NAME, default_dir=vision_demo_dir(),
                     build=build_vision_demo)
