"""The offline audio demo model: a tiny Qwen2-Audio (audio encoder, projector, language model) built locally in seconds.

`model_name_or_path: demo-audio` resolves to the built folder, as `demo` and `demo-vision` do. The folder is a real
Qwen2-Audio checkpoint: `config.json`, `model.safetensors`, a byte-level BPE tokenizer trained on the shipped demo
data with Qwen2-Audio's audio tokens, `preprocessor_config.json` for its Whisper feature extractor, and the chat
template, so it loads with transformers' Auto classes like any hub model of that architecture.

Qwen2-Audio's encoder takes a fixed window of log-mel frames (30 s in the real model). Here the window is one
second (100 frames, 25 audio tokens), so a CPU trains on clips in seconds; longer clips are cut to it, as the real
model cuts at 30 s.

The build is deterministic and atomic, and shares the text demo's fingerprinting and locking (engine.model.demo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.model.demo import EOS_TOKEN, IM_END
from engine.multimodal.demo_build import build_media_demo, demo_main, finish_build, media_tokenizer
from engine.paths import audio_demo_dir

__all__ = ["AUDIO_TOKENS", "DEMO_AUDIO_NAME", "audio_demo_dir", "build_audio_demo", "main"]

DEMO_AUDIO_NAME = "demo-audio"
"""The reserved `model_name_or_path` that resolves to the locally built audio demo model."""

BUILD_VERSION = 1
_BUILDER = "demo-audio"
TEMPLATE = "qwen2_audio"

AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
AUDIO_TOKENS = (AUDIO_BOS, AUDIO_EOS, AUDIO_TOKEN)

# Whisper's features at a small scale: 16 kHz, 10 ms hop, 128 mel bins (as Qwen2-Audio), a one-second window.
_RATE, _HOP, _N_FFT, _MELS, _WINDOW_SECONDS = 16000, 160, 400, 128, 1

_PARAMS = {
    "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 384,
    "vocab_size": 4096, "max_position_embeddings": 4096, "audio_layers": 2, "audio_d_model": 64,
    "audio_heads": 4, "audio_ffn_dim": 128, "seed": 42,
}


def _build_into(folder: Path, params: dict[str, int], texts: list[str], info: dict[str, Any]) -> None:
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    tokenizer, ids = media_tokenizer(texts, params, AUDIO_TOKENS)
    hidden = params["hidden_size"]
    frames = _WINDOW_SECONDS * _RATE // _HOP
    config = Qwen2AudioConfig(
        text_config={
            "model_type": "qwen2", "vocab_size": len(tokenizer), "hidden_size": hidden,
            "intermediate_size": params["intermediate_size"], "num_hidden_layers": params["num_layers"],
            "num_attention_heads": params["num_heads"], "num_key_value_heads": params["num_kv_heads"],
            "max_position_embeddings": params["max_position_embeddings"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
            "initializer_range": hidden ** -0.5, "bos_token_id": None, "eos_token_id": ids[IM_END],
            "pad_token_id": ids[EOS_TOKEN], "tie_word_embeddings": True,
        },
        audio_config={
            "num_mel_bins": _MELS, "encoder_layers": params["audio_layers"], "d_model": params["audio_d_model"],
            "encoder_attention_heads": params["audio_heads"], "encoder_ffn_dim": params["audio_ffn_dim"],
            # The encoder's positions are the frames after its stride-2 convolution: the window, halved.
            "max_source_positions": frames // 2,
        },
        audio_token_index=ids[AUDIO_TOKEN], tie_word_embeddings=True, dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params["seed"])
        model = Qwen2AudioForConditionalGeneration(config)
    model = model.to(torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=None, eos_token_id=[ids[IM_END], ids[EOS_TOKEN]],
                                               pad_token_id=ids[EOS_TOKEN])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=_MELS, sampling_rate=_RATE, hop_length=_HOP, chunk_length=_WINDOW_SECONDS,
                            n_fft=_N_FFT, return_attention_mask=True).save_pretrained(folder)
    finish_build(folder, model, tokenizer, ids, info)


def build_audio_demo(out_dir: str | Path | None = None, *, force: bool = False,
                     data_dir: str | Path | None = None) -> Path:
    """Build the audio demo model into `out_dir` (default saves/models/demo-audio) and return the folder; an
    identical finished build is reused unless `force`."""
    return build_media_demo(_build_into, builder=_BUILDER, version=BUILD_VERSION, template=TEMPLATE, params=_PARAMS,
                            out_dir=out_dir if out_dir is not None else audio_demo_dir(), force=force,
                            data_dir=data_dir)


def main(argv: list[str] | None = None) -> int:
    """`studio demo-model --audio [DIR] [--force]`: build (or find) the audio demo and print its folder."""
    return demo_main(argv, flag="audio", name=DEMO_AUDIO_NAME, default_dir=audio_demo_dir(), build=build_audio_demo)
