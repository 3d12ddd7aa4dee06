"""What the media demo models (`demo-vision`, `demo-audio`) share: the fingerprinted, atomic build around each one's
own model recipe, the files that mark a finished build, and the `studio demo-model --vision/--audio` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
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
from engine.paths import resource_dir

# (folder, params, tokenizer training texts, build info) → writes the model, tokenizer and processor into folder.
Recipe = Callable[[Path, dict[str, int], list[str], dict[str, Any]], None]


def build_media_demo(recipe: Recipe, *, builder: str, version: int, template: str, params: dict[str, int],
                     out_dir: str | Path, force: bool = False, data_dir: str | Path | None = None) -> Path:
    """Build a media demo into `out_dir` with `recipe` and return the folder; an identical finished build (same
    recipe version, parameters and shipped data) is reused unless `force`."""
    out = Path(os.path.abspath(Path(out_dir).expanduser()))
    data_path = Path(data_dir) if data_dir is not None else resource_dir("data")
    files = _read_data(data_path)
    fingerprint, hashes = _fingerprint({**params, "builder": version}, files)
    if not force and is_complete_build(out, fingerprint, builder=builder):
        return out
    texts = _corpus(files, data_path)
    info = {"builder": builder, "build_version": version, "fingerprint": fingerprint, "params": dict(params),
            "data_files": hashes, "template": template}
    build_atomically(out, info, lambda tmp, info: recipe(tmp, dict(params), texts, info), force=force)
    return out


def media_tokenizer(texts: list[str], params: dict[str, int], media_tokens: tuple[str, ...]) -> tuple[Any, dict]:
    """The demo's byte-level BPE tokenizer with the model's media tokens as special tokens (after eos and ChatML's
    markers), and token → id of every special and added token."""
    from transformers import TokenizersBackend

    special = (EOS_TOKEN, IM_START, IM_END, *media_tokens)
    raw = train_tokenizer(texts, params["vocab_size"], special)
    ids = {token: raw.token_to_id(token) for token in (*special, *ADDED_TOKENS)}
    tokenizer = TokenizersBackend(
        tokenizer_object=raw, bos_token=None, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, unk_token=None,
        extra_special_tokens=[IM_START, IM_END, *media_tokens], chat_template=CHAT_TEMPLATE,
        model_max_length=params["max_position_embeddings"], padding_side="right", clean_up_tokenization_spaces=False,
    )
    return tokenizer, ids


def finish_build(folder: Path, model: Any, tokenizer: Any, ids: dict[str, int], info: dict[str, Any]) -> None:
    """Write studio_model.json and, last, build_info.json (whose presence marks the build complete)."""
    info = {**info, "num_parameters": sum(p.numel() for p in model.parameters()), "tokenizer_size": len(tokenizer),
            "token_ids": ids}
    studio = {"template": info["template"], "builder": info["builder"], "build_version": info["build_version"],
              "eos_token": IM_END, "pad_token": PAD_TOKEN, "stop_tokens": [IM_END, EOS_TOKEN]}
    _write_json(folder / "studio_model.json", studio)
    _write_json(folder / "build_info.json", info)


def demo_main(argv: list[str] | None, *, flag: str, name: str, default_dir: Path,
              build: Callable[..., Path]) -> int:
    """`studio demo-model --<flag> [DIR] [--force]`: build (or find) the demo and print its folder last."""
    parser = argparse.ArgumentParser(prog=f"studio demo-model --{flag}",
                                     description=f"Build the tiny offline {flag} demo model ({name}).")
    parser.add_argument("dir", nargs="?", default=None, help=f"output folder (default: {default_dir})")
    parser.add_argument("--force", action="store_true", help="rebuild even when an identical build exists")
    args = parser.parse_args(argv)
    sys.stdout.write(f"{build(args.dir, force=args.force)}\n")
    sys.stdout.flush()
    return 0
