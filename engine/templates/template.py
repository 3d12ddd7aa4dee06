"""The `Template` record (one model family's chat format) and the registry that holds them by name.

A template is a handful of text slots. `{content}` marks where a message goes; `{bos}` and `{eos}` stand for the
tokenizer's own begin/end-of-sequence strings, so the model-agnostic formats (alpaca, vicuna, ...) work with any
tokenizer. Family formats write their control tokens literally.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ConfigError, Phrase, Setting
from engine.templates.tools import TOOL_FORMATS, get_tool_format

# The name of the pseudo-template that defers to the tokenizer's own jinja `chat_template`.
TOKENIZER_TEMPLATE = "tokenizer"

_SLOT_FIELDS = ("system", "user", "observation", "assistant", "function")


@dataclass(frozen=True, eq=False)
class Template:
    """How one model family lays out a conversation, stops a reply, writes tool calls and shows its reasoning.

    A rendered conversation is, turn by turn:
      [prefix, then the system block: first turn only] [separator: later turns] user-or-observation slot,
      generation_prompt, assistant-or-function slot.
    The prompt part of a turn runs up to and including `generation_prompt`; the response part is the filled
    assistant (or function) slot, which ends with the end-of-turn marker the model must learn to emit. The prefix,
    the system block and each turn's slot are tokenized separately (as LLaMA-Factory does), so a template lays out
    the same token ids as there.
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
    tool_format: str = "default"
    stop_words: list[str] = field(default_factory=list)
    # True: the tokenizer's eos becomes stop_words[0], so generation stops at the end-of-turn marker.
    replace_eos: bool = False
    # True: replies carry no end marker of their own; the tokenizer's eos closes the last reply, and each earlier
    # reply learns to end with eos where the next prompt starts.
    efficient_eos: bool = False
    # True: fix_tokenizer writes this template's jinja even over a chat template the tokenizer already has
    # (the generic formats, whose base models' own templates would not match what was trained).
    replace_jinja_template: bool = False
    # (open, close) of a reasoning block, whitespace included, e.g. ("<think>\n", "\n</think>\n\n"); None for
    # templates that do not reason (the `_nothink` variants among them).
    thought_words: tuple[str, str] | None = None
    # The reasoning block that stands for "no reasoning"; None: the open and close words back to back.
    empty_thought_words: str | None = None
    # True: message text is tokenized apart from the markup around it (ChatGLM3 builds its inputs that way).
    content_apart: bool = False
    # True only for the `tokenizer` pseudo-template, which renders with `tokenizer.apply_chat_template`.
    from_tokenizer: bool = False
    # The media plugin (`engine.multimodal`) that turns <image>/<video>/<audio> placeholders into the model's own
    # tokens and the processor's tensors; None for text-only templates.
    mm_plugin: str | None = None

    @property
    def modalities(self) -> frozenset[str]:
        """The media columns this template's models read (`images`, `videos`, `audios`); empty for text."""
        return PLUGIN_MODALITIES.get(self.mm_plugin or "", frozenset())

    def extract_tool_calls(self, text: str) -> list[dict] | None:
        """Parse a generated reply into `[{"name", "arguments"}]`, or None when it is a plain answer."""
        if self.thought_words and self.thought_words[1].strip() in text:
            text = text.split(self.thought_words[1].strip())[-1]
        return get_tool_format(self.tool_format).parse_calls(text)

    @property
    def empty_thought(self) -> str:
        """The reasoning block a reasoning model sees when thinking is switched off ("" for other templates)."""
        if self.thought_words is None:
            return ""
        if self.empty_thought_words is not None:
            return self.empty_thought_words
        return self.thought_words[0] + self.thought_words[1]


TEMPLATES: dict[str, Template] = {}


# What each media plugin reads (torch-free, so validation and the studio can ask before anything loads).
PLUGIN_MODALITIES: dict[str, frozenset[str]] = {
    "qwen2_vl": frozenset({"images", "videos"}),
    "qwen2_audio": frozenset({"audios"}),
    "qwen3_vl": frozenset({"images"}),
    "llava": frozenset({"images"}),
    "llava_next": frozenset({"images"}),
    "gemma3": frozenset({"images"}),
    "pixtral": frozenset({"images"}),
    "paligemma": frozenset({"images"}),
    "mllama": frozenset({"images"}),
    "intern_vl": frozenset({"images"}),
    "glm4v": frozenset({"images"}),
}


# Media plugins whose tokens go in front of the whole conversation (PaliGemma's images, before bos): only SFT lays
# its rows out that way; the preference stages' rows start with the rendered prompt.
SFT_ONLY_PLUGINS = frozenset({"paligemma"})


def register_template(name: str, **fields: object) -> Template:
    """Add a template to `TEMPLATES`; a second registration under the same name is a programming error."""
    if name in TEMPLATES:
        raise ValueError(f"template {name!r} is already registered")
    fields["stop_words"] = list(fields.get("stop_words", ()))  # type: ignore[call-overload]  # no shared lists
    template = Template(name=name, **fields)  # type: ignore[arg-type]
    if template.mm_plugin is not None and template.mm_plugin not in PLUGIN_MODALITIES:
        raise ValueError(f"template {name!r}: unknown media plugin {template.mm_plugin!r}")
    if template.tool_format not in TOOL_FORMATS:
        raise ValueError(f"template {name!r}: unknown tool format {template.tool_format!r}")
    for slot_name in _SLOT_FIELDS:
        slot = getattr(template, slot_name)
        if slot is not None and "{content}" not in slot:
            raise ValueError(f"template {name!r}: slot {slot_name!r} has no {{content}} placeholder")
    if template.replace_eos and not template.stop_words:
        raise ValueError(f"template {name!r}: replace_eos needs a stop word to become the eos token")
    if template.description and (len(template.description) > 90 or "\n" in template.description):
        raise ValueError(f"template {name!r}: the description is shown in a list; keep it to one short line")
    TEMPLATES[name] = template
    return template


def register_media_variant(name: str, base: str, *, mm_plugin: str, description: str, **changes: object) -> Template:
    """Register `name` as the text layout of the registered template `base` with a media plugin (LLaMA-Factory's
    llava_next_mistral is mistral's layout reading images, and so on), so the two layouts cannot drift apart."""
    from dataclasses import fields

    source = TEMPLATES[base]
    copied = {f.name: getattr(source, f.name) for f in fields(Template) if f.name != "name"}
    return register_template(name, **{**copied, "mm_plugin": mm_plugin, "description": description, **changes})


def list_templates() -> list[str]:
    """All registered template names, sorted (the `tokenizer` pseudo-template included)."""
    return sorted(TEMPLATES)


# LLaMA-Factory 0.9.5's templates for image, video and audio models (the multimodal issue will build them): named
# here so that a config using one is told what is missing instead of "Unknown template".
MULTIMODAL_TEMPLATES = frozenset({
    "dots_ocr", "ernie_vl", "intern_s1", "keye_vl", "kimi_vl", "lfm2_vl", "llava_next_video",
    "llava_next_video_mistral", "llava_next_video_yi", "minicpm_v", "minicpm_v_4_6", "minicpm_o", "qwen2_omni",
    "qwen3_omni", "qwen3_omni_nothink", "video_llava", "youtu_vl",
})


def get_template(name: str) -> Template:
    """The template registered as `name`; an unknown name is a config mistake the user can fix."""
    try:
        return TEMPLATES[name]
    except KeyError:
        if name in MULTIMODAL_TEMPLATES:
            raise ConfigError("feature_not_built", key=Setting("template"), value=name,
                              feature=Phrase("feature_multimodal"), instead=Phrase("instead_multimodal_template")) from None
        raise ConfigError("unknown_template", name=name, known=", ".join(list_templates())) from None
