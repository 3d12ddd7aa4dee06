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
from engine.paths import audio_demo_dir, resource_dir

__all__ = ["AUDIO_TOKENS", "DEMO_AUDIO_NAME", "audio_demo_dir", "build_audio_demo", "main"]

DEMO_AUDIO_NAME = "demo-audio"
"""The reserved `model_name_or_path` that resolves to the locally built audio demo model."""

BUILD_VERSION = 1
_BUILDER = "demo-audio"
TEMPLATE = "qwen2_audio"

AUDIO_TOKEN, AUDIO_BOS, AUDIO_EOS = "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"
AUDIO_TOKENS = (AUDIO_BOS, AUDIO_EOS, AUDIO_TOKEN)
_SPECIAL = (EOS_TOKEN, IM_START, IM_END, *AUDIO_TOKENS)

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
        TokenizersBackend,
        WhisperFeatureExtractor,
    )

    raw = train_tokenizer(texts, params["vocab_size"], _SPECIAL)
    ids = {token: raw.token_to_id(token) for token in (*_SPECIAL, *ADDED_TOKENS)}
    tokenizer = TokenizersBackend(
        tokenizer_object=raw, bos_token=None, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, unk_token=None,
        extra_special_tokens=[IM_START, IM_END, *AUDIO_TOKENS], chat_template=CHAT_TEMPLATE,
        model_max_length=params["max_position_embeddings"], padding_side="right", clean_up_tokenization_spaces=False,
    )
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
    info = {**info, "num_parameters": sum(p.numel() for p in model.parameters()), "tokenizer_size": len(tokenizer),
            "token_ids": ids}
    studio = {"template": TEMPLATE, "builder": _BUILDER, "build_version": BUILD_VERSION, "eos_token": IM_END,
              "pad_token": PAD_TOKEN, "stop_tokens": [IM_END, EOS_TOKEN]}
    _write_json(folder / "studio_model.json", studio)
    _write_json(folder / "build_info.json", info)  # last: its presence marks the build complete


def build_audio_demo(out_dir: str | Path | None = None, *, force: bool = False,
                     data_dir: str | Path | None = None) -> Path:
    """Build the audio demo model into `out_dir` (default saves/models/demo-audio) and return the folder; an
    identical finished build is reused unless `force`."""
    out = Path(os.path.abspath(Path(out_dir).expanduser() if out_dir is not None else audio_demo_dir()))
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
    """`studio demo-model --audio [DIR] [--force]`: build (or find) the audio demo and print its folder."""
    parser = argparse.ArgumentParser(prog="studio demo-model --audio",
                                     description="Build the tiny offline audio demo model (demo-audio).")
    parser.add_argument("dir", nargs="?", default=None, help=f"output folder (default: {audio_demo_dir()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when an identical build exists")
    args = parser.parse_args(argv)
    sys.stdout.write(f"{build_audio_demo(args.dir, force=args.force)}\n")
    sys.stdout.flush()
    return 0
