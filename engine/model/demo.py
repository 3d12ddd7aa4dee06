"""The offline demo model: a tiny Llama-architecture causal LM built locally, in seconds, with no download.

`build_demo_model()` trains a byte-level BPE tokenizer on the text of the shipped demo datasets
(`data/*.json`, `data/*.jsonl`) and saves it next to a randomly initialised (seeded) `LlamaForCausalLM`,
so every feature of the studio can be tried end to end on a laptop without the Hugging Face Hub.
`model_name_or_path: demo` resolves to the built folder (see `resolve_model_path`).

The build is deterministic (same parameters and data give byte-identical `model.safetensors` and
`tokenizer.json`), skipped when an identical build is already in place, and atomic: it is written to a
temporary sibling folder and renamed into place under a file lock, so concurrent builders never leave a
half-written folder behind.

Heavy libraries (torch, transformers, tokenizers) are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.paths import demo_model_dir, resource_dir
from engine.runfolder import file_lock

__all__ = [
    "BUILD_VERSION",
    "DEMO_MODEL_NAME",
    "DEMO_TEMPLATE",
    "EOS_TOKEN",
    "IM_END",
    "IM_START",
    "PAD_TOKEN",
    "SPECIAL_TOKENS",
    "ADDED_TOKENS",
    "CHAT_TEMPLATE",
    "build_atomically",
    "build_demo_model",
    "demo_fingerprint",
    "is_complete_build",
    "main",
    "resolve_model_path",
    "train_tokenizer",
]

DEMO_MODEL_NAME = "demo"
"""The reserved `model_name_or_path` that resolves to the locally built demo model."""

BUILD_VERSION = 2
"""Bump when the build recipe changes, so existing builds are rebuilt."""

DEMO_TEMPLATE = "chatml"
"""The studio chat template the demo model is trained and served with."""

EOS_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
PAD_TOKEN = EOS_TOKEN

SPECIAL_TOKENS: tuple[str, ...] = (EOS_TOKEN, IM_START, IM_END)
"""Special tokens, with fixed ids 0, 1, 2 (skipped by `decode(skip_special_tokens=True)`)."""

ADDED_TOKENS: tuple[str, ...] = ("<think>", "</think>", "<tool_call>", "</tool_call>")
"""Added non-special tokens, with fixed ids 3..6: never split, kept when decoding."""

# ChatML. The transformers jinja environment trims blocks, so newlines are written as '\n' string literals.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- elif message['content'] is not none -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "build_info.json")
_BUILD_INFO = "build_info.json"
_STUDIO_MODEL = "studio_model.json"
_BUILDER = "demo"


# ---------------------------------------------------------------- data


def _data_files(data_dir: Path) -> list[Path]:
    """The demo dataset files whose text trains the tokenizer, in sorted file-name order."""
    if not data_dir.is_dir():
        return []
    files = [
        p
        for p in data_dir.iterdir()
        if p.is_file() and p.suffix in (".json", ".jsonl") and p.name != "dataset_info.json"
    ]
    return sorted(files, key=lambda p: p.name)


def _read_data(data_dir: Path) -> list[tuple[str, bytes]]:
    """(name, content) of every data file; read once so the fingerprint and the corpus agree."""
    files = _data_files(data_dir)
    if not files:
        raise ModelError("demo_data_missing", path=str(data_dir))
    out = []
    for p in files:
        try:
            out.append((p.name, p.read_bytes()))
        except OSError as e:
            raise ModelError("demo_data_invalid", path=str(p), error=str(e)) from e
    return out


def _collect_strings(obj: Any, out: list[str]) -> None:
    """Every string value inside a parsed JSON document, depth first (dict keys are left out)."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item:
                out.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def _corpus(files: list[tuple[str, bytes]], data_dir: Path) -> list[str]:
    """The training texts of all files, in file order then document order."""
    texts: list[str] = []
    for name, content in files:
        try:
            text = content.decode("utf-8-sig")
            if name.endswith(".jsonl"):
                for line in text.splitlines():
                    if line.strip():
                        _collect_strings(json.loads(line), texts)
            else:
                _collect_strings(json.loads(text), texts)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError("demo_data_invalid", path=str(data_dir / name), error=str(e)) from e
    if not texts:
        raise ModelError("demo_data_missing", path=str(data_dir))
    return texts


# ---------------------------------------------------------------- fingerprint


def _build_params(
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    vocab_size: int,
    max_position_embeddings: int,
    seed: int,
) -> dict[str, int]:
    params = {
        "hidden_size": hidden_size,
        "num_layers": num_layers,
        "num_heads": num_heads,
        "num_kv_heads": num_kv_heads,
        "intermediate_size": intermediate_size,
        "vocab_size": vocab_size,
        "max_position_embeddings": max_position_embeddings,
        "seed": seed,
    }
    for key, value in params.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{key} must be an int, got {value!r}")
    for key in ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size"):
        if params[key] <= 0:
            raise ValueError(f"{key} must be positive, got {params[key]}")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size ({hidden_size}) must be a multiple of num_heads ({num_heads})")
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
    if vocab_size < 512:
        raise ValueError(f"vocab_size must be at least 512 (256 bytes + special tokens + merges), got {vocab_size}")
    if max_position_embeddings < 16:
        raise ValueError(f"max_position_embeddings must be at least 16, got {max_position_embeddings}")
    return params


def _fingerprint(params: dict[str, int], files: list[tuple[str, bytes]]) -> tuple[str, list[dict[str, str]]]:
    data = [{"name": name, "sha256": hashlib.sha256(content).hexdigest()} for name, content in files]
    payload = json.dumps(
        {"build_version": BUILD_VERSION, "params": params, "data": data}, sort_keys=True, ensure_ascii=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest(), data


def demo_fingerprint(
    *,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    vocab_size: int = 4096,
    max_position_embeddings: int = 2048,
    seed: int = 42,
    data_dir: str | Path | None = None,
) -> str:
    """The fingerprint a build with these parameters and the current data files would have."""
    params = _build_params(
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, vocab_size, max_position_embeddings, seed
    )
    data_path = Path(data_dir) if data_dir is not None else resource_dir("data")
    return _fingerprint(params, _read_data(data_path))[0]


def _read_build_info(folder: Path) -> dict[str, Any] | None:
    try:
        with open(folder / _BUILD_INFO, encoding="utf-8") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def is_complete_build(folder: str | Path, fingerprint: str | None = None, *, builder: str = _BUILDER) -> bool:
    """Whether `folder` holds a finished build by `builder` (with this fingerprint, when one is given)."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    info = _read_build_info(folder)
    if info is None or info.get("builder") != builder:
        return False
    return fingerprint is None or info.get("fingerprint") == fingerprint


# ---------------------------------------------------------------- build


def train_tokenizer(texts: list[str], vocab_size: int, special_tokens: tuple[str, ...] = SPECIAL_TOKENS):
    """A byte-level BPE `tokenizers.Tokenizer`: the special tokens first (ids 0…), then the added tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[*special_tokens, *ADDED_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))

    # The trainer registers all its tokens as special; the think/tool tags must survive decoding.
    spec = json.loads(tokenizer.to_str())
    for token in spec["added_tokens"]:
        if token["content"] in ADDED_TOKENS:
            token["special"] = False
    tokenizer = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))

    for i, token in enumerate((*special_tokens, *ADDED_TOKENS)):
        assert tokenizer.token_to_id(token) == i, (token, tokenizer.token_to_id(token))
    return tokenizer


def _build_into(folder: Path, params: dict[str, int], texts: list[str], info: dict[str, Any]) -> None:
    """Write a complete build (model, tokenizer, studio_model.json, build_info.json) into `folder`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, TokenizersBackend

    raw = train_tokenizer(texts, params["vocab_size"])
    eos_id = raw.token_to_id(EOS_TOKEN)
    im_end_id = raw.token_to_id(IM_END)

    tokenizer = TokenizersBackend(
        tokenizer_object=raw,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=None,
        extra_special_tokens=[IM_START, IM_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=params["max_position_embeddings"],
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )

    config = LlamaConfig(
        vocab_size=params["vocab_size"],
        hidden_size=params["hidden_size"],
        intermediate_size=params["intermediate_size"],
        num_hidden_layers=params["num_layers"],
        num_attention_heads=params["num_heads"],
        num_key_value_heads=params["num_kv_heads"],
        max_position_embeddings=params["max_position_embeddings"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
        # 1/sqrt(hidden) instead of transformers' 0.02: with tied embeddings the logits are bounded by the
        # embedding norm, and at 0.02 a LoRA (which cannot touch embeddings or norms) could never fit the data.
        initializer_range=params["hidden_size"] ** -0.5,
        bos_token_id=None,
        eos_token_id=im_end_id,
        pad_token_id=eos_id,
        dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params["seed"])
        model = LlamaForCausalLM(config)
    model = model.to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=None,
        eos_token_id=[im_end_id, eos_id],
        pad_token_id=eos_id,
    )

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    info = dict(info)
    info["num_parameters"] = sum(p.numel() for p in model.parameters())
    info["tokenizer_size"] = len(tokenizer)
    info["token_ids"] = {t: raw.token_to_id(t) for t in (*SPECIAL_TOKENS, *ADDED_TOKENS)}
    studio = {
        "template": DEMO_TEMPLATE,
        "builder": _BUILDER,
        "build_version": BUILD_VERSION,
        "eos_token": IM_END,
        "pad_token": PAD_TOKEN,
        "stop_tokens": [IM_END, EOS_TOKEN],
    }
    _write_json(folder / _STUDIO_MODEL, studio)
    _write_json(folder / _BUILD_INFO, info)  # last: its presence marks the build complete


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


def _check_replaceable(out: Path, builder: str = _BUILDER) -> None:
    """Refuse to replace a folder that is not an (old or partial) demo build: it may hold the user's files."""
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise ModelError("demo_dir_not_ours", path=str(out))
    if not any(out.iterdir()):
        return
    info = _read_build_info(out)
    if info is None or info.get("builder") != builder:
        raise ModelError("demo_dir_not_ours", path=str(out))


def _library_versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def build_atomically(out: Path, info: dict[str, Any], build_into: Any, *, force: bool = False) -> None:
    """Build into a temporary sibling of `out` with `build_into(folder, info)` and rename it into place, under a
    file lock; `info` (with `builder` and `fingerprint`) becomes build_info.json, which marks the build complete.
    An identical finished build is kept (unless `force`); a folder some other builder made is never replaced."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent / f"{out.name}.lock"):
        # Another process may have finished the same build while we waited for the lock.
        if not force and is_complete_build(out, info["fingerprint"], builder=info["builder"]):
            return
        _check_replaceable(out, info["builder"])
        # Only the lock holder builds, so any leftover temporary folder is from a killed build.
        for stale in out.parent.glob(f".{out.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        try:
            build_into(tmp, {**info, "versions": _library_versions()})
            os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
            if out.exists() or out.is_symlink():
                old = out.parent / f".{out.name}.building-old-{uuid.uuid4().hex[:8]}"
                os.rename(out, old)
                os.rename(tmp, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def build_demo_model(
    out_dir: str | Path | None = None,
    *,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 384,
    vocab_size: int = 4096,
    max_position_embeddings: int = 2048,
    seed: int = 42,
    force: bool = False,
    data_dir: str | Path | None = None,
) -> Path:
    """Build the demo model into `out_dir` (default `saves/models/demo`) and return the folder.

    Does nothing when the folder already holds a build with the same fingerprint (build version,
    parameters, data files), unless `force`. `data_dir` defaults to the shipped `data/` folder.
    """
    params = _build_params(
        hidden_size, num_layers, num_heads, num_kv_heads, intermediate_size, vocab_size, max_position_embeddings, seed
    )
    out = Path(out_dir).expanduser() if out_dir is not None else demo_model_dir()
    out = Path(os.path.abspath(out))
    data_path = Path(data_dir) if data_dir is not None else resource_dir("data")
    files = _read_data(data_path)
    fingerprint, data_hashes = _fingerprint(params, files)

    if not force and is_complete_build(out, fingerprint):
        return out

    texts = _corpus(files, data_path)
    info = {
        "builder": _BUILDER,
        "build_version": BUILD_VERSION,
        "fingerprint": fingerprint,
        "params": params,
        "data_files": data_hashes,
        "template": DEMO_TEMPLATE,
    }
    build_atomically(out, info, lambda tmp, info: _build_into(tmp, params, texts, info), force=force)
    return out


# The other reserved names and the builder of each (module:function). They build on this module's helpers, so they
# are found by name when asked for rather than imported here.
MEDIA_DEMOS = {
    "demo-vision": "engine.multimodal.demo_vision:build_vision_demo",
    "demo-audio": "engine.multimodal.demo_audio:build_audio_demo",
}


def resolve_model_path(name_or_path: str) -> str:
    """The built demo folder for the reserved names `demo`, `demo-vision` and `demo-audio` (building it when
    needed), else the input unchanged."""
    if name_or_path == DEMO_MODEL_NAME:
        return str(build_demo_model())
    if name_or_path in MEDIA_DEMOS:
        import importlib

        module, function = MEDIA_DEMOS[name_or_path].split(":")
        return str(getattr(importlib.import_module(module), function)())
    return name_or_path


def main(argv: list[str] | None = None) -> int:
    """`studio demo-model [DIR] [--force]`: build (or find) the demo model and print its folder last on stdout."""
    parser = argparse.ArgumentParser(
        prog="studio demo-model",
        description="Build the tiny offline demo model (used by `model_name_or_path: demo`).",
    )
    parser.add_argument("dir", nargs="?", default=None, help=f"output folder (default: {demo_model_dir()})")
    parser.add_argument("--force", action="store_true", help="rebuild even when an identical build exists")
    args = parser.parse_args(argv)
    out = build_demo_model(args.dir, force=args.force)
    sys.stdout.write(f"{out}\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
