"""The tokenizer part of a GGUF file: a byte-level BPE vocabulary, its merges, token types and special ids.

llama.cpp rebuilds the tokenizer from these keys (`tokenizer.ggml.*`). It splits text before BPE with a
pre-tokenizer it knows by name (`tokenizer.ggml.pre`): `gpt-2` is the regex of the `ByteLevel` pre-tokenizer
(the demo model's), `llama-bpe` Llama 3's and `qwen2` Qwen 2/3's; they differ in how digits are grouped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from engine.errors import ModelError

logger = logging.getLogger(__name__)

# The Split regexes of known byte-level BPE tokenizers, keyed by llama.cpp's pre-tokenizer name.
_LETTERS = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|"
_TAIL = r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
KNOWN_SPLITS = {
    _LETTERS + r"\p{N}{1,3}" + _TAIL: "llama-bpe",
    _LETTERS + r"\p{N}" + _TAIL: "qwen2",
}

# gguf.TokenType values (kept here so this module imports without the gguf package).
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def _walk(node: Any) -> list[dict]:
    """A pre-tokenizer and the pre-tokenizers a `Sequence` holds, flattened."""
    if not isinstance(node, dict):
        return []
    return [node] + [child for item in node.get("pretokenizers") or [] for child in _walk(item)]


def pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's name for the tokenizer.json pre-tokenizer (a byte-level BPE one, else ModelError)."""
    model = spec.get("model") or {}
    parts = _walk(spec.get("pre_tokenizer"))
    if model.get("type") != "BPE" or not any(p.get("type") == "ByteLevel" for p in parts):
        kind = f"{model.get('type', '?')} with {', '.join(p.get('type', '?') for p in parts) or 'no'} pre-tokenizer"
        raise ModelError("export_gguf_tokenizer_unsupported", kind=kind)
    splits = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    if not splits:
        return "gpt-2"
    name = KNOWN_SPLITS.get(splits[0] or "")
    if name is None:
        logger.warning("Unknown pre-tokenizer regex %r: writing tokenizer.ggml.pre=default; llama.cpp may split "
                       "text differently from transformers.", splits[0])
        return "default"
    return name


def _merges(spec: dict) -> list[str]:
    merges = (spec.get("model") or {}).get("merges") or []
    return [" ".join(m) if isinstance(m, (list, tuple)) else str(m) for m in merges]


def _adds_token(tokenizer: Any, token_id: int | None, first: bool) -> bool:
    """Whether encoding plain text puts `token_id` first (bos) or last (eos)."""
    if token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0 if first else -1] == token_id


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts its bos token in front of encoded text (llama.cpp then does too)."""
    return _adds_token(tokenizer, tokenizer.bos_token_id, first=True)


def vocab_entries(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Token strings and types by id, padded with unused `[PADn]` entries up to the model's embedding rows."""
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = {index: token for index, token in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    size = max(vocab_size, max(by_id) + 1 if by_id else 0)
    tokens, types = [], []
    for index in range(size):
        if index in added:
            tokens.append(added[index].content)
            types.append(CONTROL if added[index].special else USER_DEFINED)
        elif index in by_id:
            tokens.append(by_id[index])
            types.append(NORMAL)
        else:
            tokens.append(f"[PAD{index}]")
            types.append(UNUSED)
    return tokens, types


def add_tokenizer(writer: Any, tokenizer: Any, template: Any, vocab_size: int) -> None:
    """Write the `tokenizer.ggml.*` keys and the chat template for `tokenizer` into a GGUFWriter."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(spec))
    tokens, types = vocab_entries(tokenizer, vocab_size)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(_merges(spec))
    vocab = tokenizer.get_vocab()
    specials = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
                "unk": tokenizer.unk_token_id}
    for kind, token_id in specials.items():
        if token_id is not None:
            getattr(writer, f"add_{kind}_token_id")(token_id)
    stops = [vocab[word] for word in template.stop_words if word in vocab]
    if stops:
        writer.add_eot_token_id(stops[0])
    writer.add_add_bos_token(adds_bos(tokenizer))
    writer.add_add_eos_token(_adds_token(tokenizer, tokenizer.eos_token_id, first=False))
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)
