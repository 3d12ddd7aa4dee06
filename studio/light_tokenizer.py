"""A tokenizer for previews that needs neither torch nor transformers: a model folder's tokenizer.json, read by `tokenizers`.

`LightTokenizer` offers what the chat-template renderer (`engine.templates`) and `engine.templates.fix_tokenizer` use
from a transformers tokenizer: `encode`, `decode`, the bos/eos/pad tokens and ids, `convert_tokens_to_ids`,
`get_vocab`, `add_special_tokens`, `chat_template` and `apply_chat_template` (rendered with jinja the way
transformers does). Its ids are those of `AutoTokenizer` for fast tokenizers, so a preview shows what training sees.
The studio never downloads a model: the folder must be on this computer (or already in the Hugging Face cache).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.model.demo import DEMO_MODEL_NAME
from engine.model.families import DEMO_AUDIO_PATH, DEMO_VISION_PATH
from engine.paths import audio_demo_dir, demo_model_dir, vision_demo_dir

_NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
_EXTRA_TOKEN_KEYS = ("extra_special_tokens", "additional_special_tokens")
# Decoding a window of earlier tokens with each one keeps the spaces that sentencepiece decoders strip at the start.
_CONTEXT_TOKENS = 4
_MAX_BYTES_PER_CHAR = 4


def _token_text(value: Any) -> str | None:
    """A special token as text: a string, an AddedToken, or a serialized one ({"content": ...} in the config)."""
    if isinstance(value, dict):
        value = value.get("content")
    value = getattr(value, "content", value)
    return value if isinstance(value, str) and value else None


class LightTokenizer:
    """The parts of a transformers fast tokenizer that rendering a chat template needs, over a `tokenizers.Tokenizer`."""

    def __init__(self, backend: Any, config: dict | None = None, chat_template: str | None = None,
                 name_or_path: str = "") -> None:
        config = config or {}
        self._backend = backend
        self.name_or_path = name_or_path
        self.chat_template = chat_template
        self.clean_up_tokenization_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        for attr in _NAMED_TOKENS:
            setattr(self, attr, _token_text(config.get(attr)))
        extra = [_token_text(t) for key in _EXTRA_TOKEN_KEYS for t in (config.get(key) or [])]
        decoder = config.get("added_tokens_decoder") or {}
        extra += [_token_text(t) for t in decoder.values() if isinstance(t, dict) and t.get("special")]
        # transformers adds special tokens the config names but tokenizer.json lacks; do the same.
        named = [getattr(self, attr) for attr in _NAMED_TOKENS]
        missing = [t for t in dict.fromkeys(named + extra) if t and backend.token_to_id(t) is None]
        if missing:
            self._add(missing)

    # --- ids and text

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text` (the post-processor's bos/eos only with `add_special_tokens`)."""
        return list(self._backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        """The text of token ids (special tokens kept unless asked otherwise, as in transformers)."""
        text = self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)
        return _clean_up_spaces(text) if self.clean_up_tokenization_spaces else text

    def token_pieces(self, ids: list[int]) -> list[tuple[int, int, str]]:
        """`(start, end, text)` chunks of `ids`, one per token except where a character spans several tokens.

        Each chunk's text is what those tokens add to the decoded string, so the chunks join to `decode(ids)`.
        """
        pieces: list[tuple[int, int, str]] = []
        start = 0
        for end in range(1, len(ids) + 1):
            context = max(0, start - _CONTEXT_TOKENS)
            text = self._backend.decode(ids[context:end], skip_special_tokens=False)
            if text.endswith("\ufffd") and end < len(ids) and end - start < _MAX_BYTES_PER_CHAR:
                continue  # a character cut between byte tokens: wait for the rest of it
            before = self._backend.decode(ids[context:start], skip_special_tokens=False) if start > context else ""
            piece = text[len(before):] if text.startswith(before) else self._backend.decode(ids[start:end])
            pieces.append((start, end, piece))
            start = end
        return pieces

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | None | list[int | None]:
        """The id of a token (or of each token in a list); unknown tokens give the unk id, or None without one."""
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return found if found is not None else self.unk_token_id
        return [self.convert_tokens_to_ids(token) for token in tokens]  # type: ignore[misc]

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | None | list[str | None]:
        """The vocabulary entry of an id (or of each id in a list)."""
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        return [self._backend.id_to_token(i) for i in ids]

    def get_vocab(self) -> dict[str, int]:
        """Token → id, added tokens included."""
        return self._backend.get_vocab(with_added_tokens=True)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def _token_id(self, token: str | None) -> int | None:
        return self._backend.token_to_id(token) if token else None

    @property
    def bos_token_id(self) -> int | None:
        return self._token_id(self.bos_token)

    @property
    def eos_token_id(self) -> int | None:
        return self._token_id(self.eos_token)

    @property
    def pad_token_id(self) -> int | None:
        return self._token_id(self.pad_token)

    @property
    def unk_token_id(self) -> int | None:
        return self._token_id(self.unk_token)

    # --- changes fix_tokenizer makes

    def _add(self, tokens: list[str]) -> int:
        from tokenizers import AddedToken

        return self._backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])

    def add_special_tokens(self, tokens: dict[str, Any], replace_extra_special_tokens: bool = True) -> int:
        """Set named special tokens (`eos_token`, ...) and add extra ones; returns how many new ids were created."""
        added = 0
        for key, value in tokens.items():
            if key in _NAMED_TOKENS:
                text = _token_text(value)
                if text:
                    added += self._add([text])
                setattr(self, key, text)
            elif key in _EXTRA_TOKEN_KEYS:
                added += self._add([text for text in map(_token_text, value) if text])
            else:
                raise ValueError(f"unknown special token key {key!r}")
        return added

    # --- chat template

    def apply_chat_template(self, messages: list[dict], tools: list[dict] | None = None, tokenize: bool = False,
                            add_generation_prompt: bool = False, **kwargs: Any) -> str | list[int]:
        """Render `messages` with the tokenizer's jinja `chat_template`, in the sandbox transformers uses."""
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat_template")
        named = {attr: getattr(self, attr) for attr in _NAMED_TOKENS if getattr(self, attr)}
        text = _compile(self.chat_template).render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=add_generation_prompt,
            **{**named, **kwargs},
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text


def _clean_up_spaces(text: str) -> str:
    """transformers' `clean_up_tokenization` (spaces before punctuation and English contractions)."""
    for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(before, after)
    return text


@cache
def _compile(source: str) -> Any:
    """A compiled chat template, in an environment set up like transformers' (sandboxed, trimmed blocks)."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        # Jinja's own tojson escapes HTML characters, which would change what the model sees.
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


# --- finding and loading a model folder's tokenizer


def tokenizer_dir(model_path: str | Path) -> Path:
    """The local folder holding `model_path`'s tokenizer.json: the demo build, a folder, or a hub id's cached copy."""
    value = str(model_path).strip()
    built = {DEMO_MODEL_NAME: demo_model_dir, DEMO_VISION_PATH: vision_demo_dir, DEMO_AUDIO_PATH: audio_demo_dir}
    if value in built:
        folder = built[value]()
        if not (folder / "tokenizer.json").is_file():
            raise ModelError("preview_needs_demo_model", path=str(folder))
        return folder
    folder = Path(value).expanduser()
    if folder.is_dir():
        if not (folder / "tokenizer.json").is_file():
            raise ModelError("preview_no_tokenizer_json", path=str(folder))
        return folder
    cached = _hub_cache_file(value, "tokenizer.json")
    if cached is None:
        raise ModelError("preview_needs_local_model", model=value)
    return cached.parent


def _hub_cache_file(repo_id: str, filename: str) -> Path | None:
    """A file of a hub model already in the Hugging Face cache (no network), or None."""
    if not _looks_like_repo_id(repo_id):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename)
    except Exception:  # an id the hub library rejects is simply not cached
        return None
    return Path(found) if isinstance(found, str) else None


def _looks_like_repo_id(value: str) -> bool:
    """Whether `value` has the `org/name` shape of a hub id (not a path that happens not to exist)."""
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "~"))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError("preview_tokenizer_unreadable", path=str(path), reason=str(err)) from None
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict) -> str | None:
    """The jinja chat template: chat_template.jinja, else chat_template.json, else tokenizer_config.json's."""
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    template = _read_json(folder / "chat_template.json").get("chat_template") or config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


def load_light_tokenizer(model_path: str | Path) -> LightTokenizer:
    """The tokenizer of a local model folder (or `demo`, or a hub model already downloaded), without transformers."""
    from tokenizers import Tokenizer

    folder = tokenizer_dir(model_path)
    try:
        backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as err:  # the Rust library raises plain Exceptions for bad files
        raise ModelError("preview_tokenizer_unreadable", path=str(folder / "tokenizer.json"), reason=str(err)) from None
    config = _read_json(folder / "tokenizer_config.json")
    return LightTokenizer(backend, config, _chat_template(folder, config), name_or_path=str(folder))
