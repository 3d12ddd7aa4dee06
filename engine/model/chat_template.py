"""Which chat template a model uses: the config's, the model folder's recommendation, or the tokenizer's own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)
MODEL_INFO_FILE = "studio_model.json"


def recommended_template(model_path: str) -> str | None:
    """The template named by a local model folder's studio_model.json (the demo model writes one)."""
    info = Path(model_path) / MODEL_INFO_FILE
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("template")
    except (OSError, ValueError, AttributeError):
        return None


def template_name_for(template: str | None, model_path: str, tokenizer: Any) -> str:
    """Resolve the template name: explicit > the model folder's > the tokenizer's own chat template > `default`."""
    if template:
        return template
    recommended = recommended_template(model_path)
    if recommended:
        return recommended
    if getattr(tokenizer, "chat_template", None):
        return "tokenizer"
    logger.warning("No chat template is set and the tokenizer has none; using 'default'. Set `template` to fix.")
    return "default"


def load_template(template: str | None, model_path: str, tokenizer: Any, tool_format: str | None = None) -> Any:
    """The Template object for this model, with the tokenizer fixed to match it (eos, pad, stop words);
    `tool_format` (the config's) replaces the template's own way of writing tool calls."""
    import dataclasses

    from engine.templates import fix_tokenizer, get_template

    chosen = get_template(template_name_for(template, model_path, tokenizer))
    if tool_format and tool_format != chosen.tool_format:
        logger.info("Tool calls are written in the %s format (tool_format), not %s's own.", tool_format, chosen.name)
        chosen = dataclasses.replace(chosen, tool_format=tool_format)
    fix_tokenizer(chosen, tokenizer)
    return chosen
