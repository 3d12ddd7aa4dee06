"""The `Template` record (one model family's chat format) and the registry that holds them by name.

A template is a handful of text slots. `{content}` marks where a message goes; `{bos}` and `{eos}` stand for the
tokenizer's own begin/end-of-sequence strings, so the model-agnostic formats (alpaca, vicuna, ...) work with any
tokenizer. Family formats write their control tokens literally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ConfigError
from engine.templates.tools import TOOL_FORMATS, get_tool_format

# The name of the pseudo-template that defers to the tokenizer's own jinja `chat_template`.
TOKENIZER_TEMPLATE = "tokenizer"

_SLOT_FIELDS = ("system", "user", "observation", "assistant", "function")


@dataclass(frozen=True, eq=False)
class Template:
    """How one model family lays out a conversation, stops a reply and writes tool calls.

    A rendered conversation is, turn by turn:
      [prefix + system block, first turn only] [separator, later turns] user-or-observation slot,
      generation_prompt, assistant-or-function slot.
    The prompt part of a turn runs up to and including `generation_prompt`; the response part is the filled
    assistant (or function) slot, which ends with the end-of-turn marker the model must learn to emit.
    """

    name: str
    description: str = ""
    prefix: str = ""
    system: str = "{content}"
    user: str = "{content}"
    observation: str | None = None  # a tool result; None: laid out like a user message
    generation_prompt: str = ""
    assistant: str = "{content}"
    function: str | None = None  # a reply that calls tools; None: laid out like any reply
    separator: str = ""
    default_system: str = ""
    # Families without a system role (llama2, mistral, gemma) fold the system text into the first user message.
    system_in_user: bool = False
    # False: the tool description goes right after `prefix` instead of into the system text (mistral).
    tools_in_system: bool = True
    tool_format: str = "default"
    stop_words: list[str] = field(default_factory=list)
    # True: the tokenizer's eos becomes stop_words[0], so generation stops at the end-of-turn marker.
    replace_eos: bool = False
    # True: replies carry no end marker of their own; the tokenizer's eos closes the last reply only.
    efficient_eos: bool = False
    # (open, close) tags of a reasoning block, e.g. ("<think>", "</think>"); None for non-reasoning families.
    think_words: tuple[str, str] | None = None
    # True only for the `tokenizer` pseudo-template, which renders with `tokenizer.apply_chat_template`.
    from_tokenizer: bool = False

    def extract_tool_calls(self, text: str) -> list[dict] | None:
        """Parse a generated reply into `[{"name", "arguments"}]`, or None when it is a plain answer."""
        if self.think_words and self.think_words[1] in text:
            text = text.split(self.think_words[1])[-1]
        return get_tool_format(self.tool_format).parse_calls(text)

    @property
    def empty_think(self) -> str:
        """The reasoning block a reasoning model sees when thinking is switched off ("" for other families)."""
        if self.think_words is None:
            return ""
        open_tag, close_tag = self.think_words
        return f"{open_tag}\n\n{close_tag}\n\n"


TEMPLATES: dict[str, Template] = {}


def register_template(name: str, **fields: object) -> Template:
    """Add a template to `TEMPLATES`; a second registration under the same name is a programming error."""
    if name in TEMPLATES:
        raise ValueError(f"template {name!r} is already registered")
    fields["stop_words"] = list(fields.get("stop_words", ()))  # type: ignore[call-overload]  # no shared lists
    template = Template(name=name, **fields)  # type: ignore[arg-type]
    if template.tool_format not in TOOL_FORMATS:
        raise ValueError(f"template {name!r}: unknown tool format {template.tool_format!r}")
    for slot_name in _SLOT_FIELDS:
        slot = getattr(template, slot_name)
        if slot is not None and "{content}" not in slot:
            raise ValueError(f"template {name!r}: slot {slot_name!r} has no {{content}} placeholder")
    if template.replace_eos and not template.stop_words:
        raise ValueError(f"template {name!r}: replace_eos needs a stop word to become the eos token")
    if template.think_words and not template.assistant.startswith("{content}"):
        # The empty thought block may sit at the end of the prompt or open the reply: both must read the same.
        raise ValueError(f"template {name!r}: a reasoning template's assistant slot must start with {{content}}")
    TEMPLATES[name] = template
    return template


def list_templates() -> list[str]:
    """All registered template names, sorted (the `tokenizer` pseudo-template included)."""
    return sorted(TEMPLATES)


def get_template(name: str) -> Template:
    """The template registered as `name`; an unknown name is a config mistake the user can fix."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError("unknown_template", name=name, known=", ".join(list_templates())) from None
