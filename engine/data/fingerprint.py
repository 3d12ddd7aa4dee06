"""The key of the tokenization cache: a digest of everything that shapes the tokenized rows of a run.

In it: each dataset's registry entry and contents (a hash of the file, or its path, size and modification time when
it is too big to hash quickly; the commit of a hub dataset), sampling and splitting (max_samples, val_size, seed,
mixing, identity placeholders), the template's definition, the tokenizer (its vocabulary, merges, added tokens and
special tokens), the tokenization settings, the versions of transformers and tokenizers, and the source code that
renders and tokenizes. Change any of them and the key changes, so a stale entry is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.registry import DatasetAttr, get_dataset_attrs
from engine.paths import resolve_dataset_dir

logger = logging.getLogger(__name__)

# Bump when the layout of saved rows or the meaning of a key input changes.
CACHE_VERSION = 1
# Files up to this size are identified by a hash of their contents, bigger ones by path, size and mtime.
HASH_LIMIT_BYTES = 2**20
_PACKAGE = Path(__file__).resolve().parent.parent
# The code whose behaviour decides the rows: reading, converting, rendering, tokenizing. Of preprocess.py only the
# tokenizing functions count (packing and collating happen after the cache).
_CODE_PATHS = ("templates", "data/converter.py", "data/files.py", "data/loader.py", "data/registry.py",
               "data/sources.py", "data/columns.py")
_CODE_FUNCTIONS = {"data/preprocess.py": ("tokenize_sft", "_sft_chunk", "tokenize_pt", "_pt_chunk")}

@dataclass(frozen=True)
class CacheKey:
    """A cache key: its digest (the entry's folder name) and the inputs it was computed from (kept in meta.json)."""

    digest: str
    inputs: dict[str, Any]


def canonical_json(value: Any) -> str:
    """`value` as JSON with sorted keys, the form that is hashed and compared (odd values by their repr)."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except TypeError:  # json's C encoder, 50x faster, is only used without a `default`
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def cache_key(config: RunConfig, template: Any, tokenizer: Any) -> CacheKey | None:
    """The key of this run's tokenized rows; None when a dataset's version cannot be pinned (nothing is cached)."""
    data = data_inputs(config)
    if data is None:
        return None
    inputs = {"version": CACHE_VERSION, "code": code_digest(), "libraries": library_versions(), "data": data,
              "settings": tokenize_settings(config, template, tokenizer)}
    return CacheKey(hashlib.sha256(canonical_json(inputs).encode()).hexdigest()[:40], inputs)


def tokenize_settings(config: RunConfig, template: Any, tokenizer: Any) -> dict[str, Any]:
    """The inputs besides the data: stage, template, tokenizer and the settings that tokenizing reads."""
    data, stage = config.data, config.finetuning.stage
    settings = {"stage": stage, "template": dataclasses.asdict(template) if template is not None else None,
                "tokenizer": tokenizer_digest(tokenizer), "cutoff_len": data.cutoff_len,
                "train_on_prompt": data.train_on_prompt, "mask_history": data.mask_history,
                "default_system": data.default_system, "enable_thinking": data.enable_thinking,
                "preserve_thinking": data.preserve_thinking,
                "tool_format": data.tool_format}
    if stage == "pt":  # pre-training packs while tokenizing; SFT packs the loaded rows, so its cache is unpacked
        settings["packing"] = data.packing is not False
    return settings


def data_inputs(config: RunConfig) -> dict[str, Any] | None:
    """Which examples the run reads: the datasets' identities plus sampling, mixing and splitting."""
    data = config.data
    train = dataset_identities(data.dataset, data.dataset_dir)
    evaluation = dataset_identities(data.eval_dataset, data.dataset_dir)
    if train is None or evaluation is None:
        return None
    return {"train": train, "eval": evaluation, "max_samples": data.max_samples,
            "val_size": None if data.eval_dataset else data.val_size, "seed": config.training.seed,
            "mix_strategy": data.mix_strategy, "interleave_probs": data.interleave_probs,
            "placeholders": {"name": data.identity_name, "author": data.identity_author},
            "require_response": config.finetuning.stage != "pt"}


def dataset_identities(names: str | None, dataset_dir: str | Path | None) -> list[dict[str, Any]] | None:
    """Each named dataset's registry entry and source version; None when one of them cannot be identified."""
    if not names:
        return []
    identities = []
    for attr in get_dataset_attrs(names, dataset_dir):
        source = file_identity(attr, dataset_dir) if attr.load_from == "file" else hub_identity(attr)
        if source is None:
            return None
        identities.append({"entry": dataclasses.asdict(attr), "source": source})
    return identities


def file_identity(attr: DatasetAttr, dataset_dir: str | Path | None) -> list[dict[str, Any]] | None:
    """Name and content hash (or path, size and mtime) of each file of a local dataset; None when one is missing."""
    base = Path(os.path.abspath(resolve_dataset_dir(dataset_dir)))
    path = Path(os.path.normpath(base / attr.path_or_id))
    try:
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            files = [path]
        return [_one_file(file, base) for file in files]
    except OSError:
        return None  # the loader reports the missing or unreadable file properly


def _one_file(path: Path, base: Path) -> dict[str, Any]:
    stat = path.stat()
    identity: dict[str, Any] = {"file": Path(os.path.relpath(path, base)).as_posix(), "size": stat.st_size}
    if stat.st_size <= HASH_LIMIT_BYTES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        identity["sha256"] = digest.hexdigest()
    else:
        identity.update(path=str(path.resolve()), mtime_ns=stat.st_mtime_ns)
    return identity


def hub_identity(attr: DatasetAttr) -> dict[str, Any] | None:
    """A Hugging Face dataset's id and commit; None when no version can be pinned: the commit is unknown (offline
    and never downloaded), or the source has none we can ask for (ModelScope, OpenMind, script_url, cloud files)."""
    if attr.load_from != "hf_hub":
        return None
    revision = hub_revision(attr.path_or_id)
    if revision is None:
        logger.info("Dataset %r: its hub revision is unknown, so its tokenized rows are not cached.", attr.name)
        return None
    return {"hub": attr.load_from, "id": attr.path_or_id, "revision": revision}


def hub_revision(repo_id: str) -> str | None:
    """The commit of a Hugging Face dataset's main branch: asked of the hub when online, else the local cache's."""
    try:
        from huggingface_hub import HfApi, constants
    except ImportError:
        return None
    if not constants.HF_HUB_OFFLINE:
        try:
            return HfApi().dataset_info(repo_id, timeout=10).sha
        except Exception:  # no network, no access: fall back to what was downloaded last
            logger.debug("Could not ask the hub for the revision of %s.", repo_id, exc_info=True)
    ref = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def tokenizer_digest(tokenizer: Any) -> str:
    """A hash of everything in the tokenizer that can change the ids it gives or the text templates write."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        text = backend.to_str()
        if backend.truncation is not None or backend.padding is not None:
            # transformers switches these off for each call: they do not change `encode`'s result.
            state = json.loads(text)
            state.pop("truncation", None)
            state.pop("padding", None)
            text = canonical_json(state)
        digest.update(text.encode())
    else:
        digest.update(canonical_json(sorted(tokenizer.get_vocab().items())).encode())
        digest.update(_vocab_files_digest(tokenizer).encode())
    extra = {"class": type(tokenizer).__name__, "size": len(tokenizer), "bos": tokenizer.bos_token,
             "eos": tokenizer.eos_token, "special": getattr(tokenizer, "all_special_tokens", None),
             "split_special_tokens": getattr(tokenizer, "split_special_tokens", None),
             "chat_template": getattr(tokenizer, "chat_template", None)}
    digest.update(canonical_json(extra).encode())
    return digest.hexdigest()


def _vocab_files_digest(tokenizer: Any) -> str:
    """A hash of a slow tokenizer's vocabulary files (sentencepiece models keep their merges there)."""
    digest = hashlib.sha256()
    folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
    for name in sorted(getattr(tokenizer, "vocab_files_names", {}).values()):
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + path.read_bytes())
    return digest.hexdigest()


@cache
def code_digest() -> str:
    """A hash of the source files that read, render and tokenize the data."""
    digest = hashlib.sha256()
    for entry in _CODE_PATHS:
        path = _PACKAGE / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            if file.is_file():
                digest.update(file.relative_to(_PACKAGE).as_posix().encode() + b"\0" + file.read_bytes())
    for entry, names in _CODE_FUNCTIONS.items():
        # Top-level blocks start at lines that do not begin with whitespace; only the named functions count.
        blocks = re.split(r"\n(?=\S)", (_PACKAGE / entry).read_text(encoding="utf-8"))
        for block in blocks:
            if block.startswith(tuple(f"def {name}(" for name in names)):
                digest.update(block.rstrip().encode())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that tokenize (both are loaded already when there is a tokenizer)."""
    import tokenizers
    import transformers

    return {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__}
