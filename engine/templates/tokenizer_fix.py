"""Make a tokenizer fit a template: end-of-turn as eos, stop words as single tokens, a pad token, a chat template."""

from __future__ import annotations

import logging
from typing import Any

from engine.errors import ModelError
from engine.templates.jinja import to_jinja
from engine.templates.template import Template

logger = logging.getLogger(__name__)

# The eos given to tokenizers that have none, so every reply can end with one.
FALLBACK_EOS = "<|endoftext|>"


def fix_tokenizer(template: Template, tokenizer: Any) -> None:
    """Adjust `tokenizer` in place for `template`.

    Tokens it adds enlarge the vocabulary: the caller must resize the model's embeddings to `len(tokenizer)`.
    With `replace_eos` the eos changes too, so the model's generation config must follow `tokenizer.eos_token_id`.
    The template's jinja becomes the tokenizer's chat template when it has none, or always with
    `replace_jinja_template` (the generic formats: a base model's own template would not match what was trained).
    """
    if template.from_tokenizer and not getattr(tokenizer, "chat_template", None):
        raise ModelError("no_chat_template", model=getattr(tokenizer, "name_or_path", "") or "this model")
    if template.replace_eos and tokenizer.eos_token != template.stop_words[0]:
        previous = tokenizer.eos_token
        tokenizer.add_special_tokens({"eos_token": template.stop_words[0]})
        logger.info("Template %r: eos token %s replaced by %s.", template.name, previous, tokenizer.eos_token)
    elif tokenizer.eos_token is None:
        tokenizer.add_special_tokens({"eos_token": FALLBACK_EOS})
        logger.info("The tokenizer had no eos token; added %s.", FALLBACK_EOS)
    vocab = tokenizer.get_vocab()
    missing = [word for word in template.stop_words if word not in vocab]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
        logger.info("Template %r: added stop words %s as special tokens.", template.name, ", ".join(missing))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    has_own = bool(getattr(tokenizer, "chat_template", None))
    if not template.from_tokenizer and (template.replace_jinja_template or not has_own):
        tokenizer.chat_template = to_jinja(template)
