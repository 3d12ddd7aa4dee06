"""Chat templates: the registry of model families' chat formats and the one renderer for training and inference.

Importing this package is cheap (no torch, no transformers): the studio lists `list_templates()` from it. Only the
functions that tokenize take a tokenizer object.
"""

from engine.templates import families as _families  # noqa: F401  (fills TEMPLATES)
from engine.templates.encode import IGNORE_INDEX, render_conversation, render_prompt_ids
from engine.templates.render import render_text
from engine.templates.template import (
    TEMPLATES,
    TOKENIZER_TEMPLATE,
    Template,
    get_template,
    list_templates,
    register_template,
)
from engine.templates.tokenizer_fix import fix_tokenizer

__all__ = [
    "IGNORE_INDEX",
    "TEMPLATES",
    "TOKENIZER_TEMPLATE",
    "Template",
    "fix_tokenizer",
    "get_template",
    "list_templates",
    "register_template",
    "render_conversation",
    "render_prompt_ids",
    "render_text",
]
