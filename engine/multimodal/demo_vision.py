"""The offline vision demo model: a tiny Qwen2-VL (vision tower, merger, language model) built locally in seconds.

`model_name_or_path: demo-vision` resolves to the built folder, as `demo` does for the text model. The folder is a
real Qwen2-VL checkpoint: `config.json`, `model.safetensors`, a byte-level BPE tokenizer trained on the shipped
demo data with Qwen2-VL's vision tokens, `preprocessor_config.json` for the image processor, and the chat template,
so it loads with transformers' Auto classes like any hub model of that architecture. Images are kept small
(56-224 px, 4-64 visual tokens) so a CPU trains on them in seconds.

The build is deterministic and atomic, and shares the text demo's fingerprinting and locking (engine.model.demo).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.model.demo import (
    ADDED_TOKENS,
    CHAT_TEMPLATE,
    EOS_TOKEN,
    IM_END,
    IM_START,
    PAD_TOKEN,
    _corpus,
    _fingerprint,
    _read_data,
    _write_json,
    build_atomically,
    is_complete_build,
    train_tokenizer,
)
from engine.paths import resource_dir, vision_demo_dir

__all__ = ["DEMO_VISION_NAME", "VISION_TOKENS", "build_vision_demo", "main", "vision_demo_dir"]

DEMO_VISION_NAME = "demo-vision"
"""The reserved `model_name_or_path` that resolves to the locally built vision demo model."""

BUILD_VERSION = 1
_BUILDER = "demo-vision"
TEMPLATE = "qwen2_vl"

VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"
VISION_TOKENS = (VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD)
_SPECIAL = (EOS_TOKEN, IM_START, IM_END, *VISION_TOKENS)

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
    from transformers import GenerationConfig, Qwen2VLConfig, Qwen2VLForConditionalGeneration, TokenizersBackend
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    raw = train_tokenizer(texts, params["vocab_size"], _SPECIAL)
    ids = {token: raw.token_to_id(token) for token in (*_SPECIAL, *ADDED_TOKENS)}
    tokenizer = TokenizersBackend(
        tokenizer_object=raw, bos_token=None, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, unk_token=None,
        extra_special_tokens=[IM_START, IM_END, *VISION_TOKENS], chat_template=CHAT_TEMPLATE,
        model_max_length=params["max_position_embeddings"], padding_side="right", clean_up_tokenization_spaces=False,
    )
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
    info = {**info, "num_parameters": sum(p.numel() for p in model.parameters()), "tokenizer_size": len(tokenizer),
            "token_ids": ids}
    studio = {"template": TEMPLATE, "builder": _BUILDER, "build_version": BUILD_VERSION, "eos_token": IM_END,
              "pad_token": PAD_TOKEN, "stop_tokens": [IM_END, EOS_TOKEN]}
    _write_json(folder / "studio_model.json", studio)
    _write_json(folder / "build_info.json", info)  # last: its presence marks the build complete


def build_vision_demo(out_dir: str | Path | None = None, *, force: bool = False,
                      data_dir: str | Path | None = None) -> Path:
    """Build the vision demo model into `out_dir` (default saves/models/demo-vision) and return the folder; an
    identical finished build is reused unless `force`."""
    out = Path(os.path.abspath(Path(out_dir).expanduser() if out_dir is not None else vision_demo_dir()))
    data_path = Path(data_dir) if data_dir is not None else resource_dir("data")
    files = _read_data(data_path)
    params = dict(_PARAMS)
    fingerprint, hashes = _fingerprint({**params, "builder": BUILD_VERSION}, files)  # type: ignore[dict-item]
    if not force and is_complete_build(out, fingerprint, builder=_BUILDER):
        return out
    texts = _corpus(files, data_path)
    info = {"builder": _BUILDER, "build_version": BUILD_VERSION, "fingerprint": fingerprint, "params": params,
            "data_files": hashes, "template": TEMPLATE}
    build_atomically(out, info, lambda tmp, info: _build_into(tmp, params, texts, info), force=force)
    return out


def main(argv: list[str] | None = None) -> int:
    """`studio demo-model --vision [DIR] [--force]`: build (or find) the vision demo and print its folder."""
    parser = argparse.ArgumentParser(prog="studio demo-model --vision",
                                     description="Build the tiny offline vision demo model (demo-vision).")
    parser.add_argument("dir", nargs="?", default=None, help=f"output folder (default: {vision_demo_dir()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when an identical build exists")
    args = parser.parse_args(argv)
    sys.stdout.write(f"{build_vision_demo(args.dir, force=args.force)}\n")
    sys.stdout.flush()
    return 0
