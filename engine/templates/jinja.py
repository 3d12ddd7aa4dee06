"""A jinja `chat_template` equivalent to a named template, for tokenizers that come without one.

Saved with the fine-tuned model, it lets `tokenizer.apply_chat_template` (transformers, vLLM, TGI) render the
same text as `render_text` for plain conversations: system, user, assistant and `tool` results. Tool definitions
and `tool_calls` are not rendered by it. HF's jinja environment trims blocks and strips their indentation, so all
text, newlines included, is emitted from string literals and every tag uses whitespace control.
"""

from __future__ import annotations

import re

from engine.templates.template import Template

_PLACEHOLDER = re.compile(r"(\{content\}|\{bos\}|\{eos\})")


def _literal(text: str) -> str:
    # Jinja unescapes string literals with Python's unicode-escape rules.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _expr(slot: str, content: str = "''") -> str:
    """A jinja expression that fills `slot`, with `content` a jinja expression for the message text."""
    names = {"{content}": content, "{bos}": "(bos_token or '')", "{eos}": "(eos_token or '')"}
    parts = [names.get(piece) or _literal(piece) for piece in _PLACEHOLDER.split(slot) if piece]
    return " + ".join(parts) or "''"


def _emit(expression: str) -> str:
    return "{{- " + expression + " -}}"


def _thinking_block(template: Template) -> str:
    """Jinja that lays out or drops the reasoning block of `content`, mirroring `engine.templates.thinking`."""
    opening, closing = template.thought_words or ("", "")
    open_tag, close_tag = _literal(opening.strip()), _literal(closing.strip())
    return (
        "{%- set has_thought = false -%}"
        f"{{%- if {close_tag} in content -%}}"
        f"{{%- set thought = content.split({close_tag})[0].split({open_tag})[-1].strip('\\n') -%}}"
        f"{{%- set answer = content.split({close_tag})[-1].lstrip('\\n') -%}}"
        "{%- if loop.index0 < ns.last_user or (enable_thinking is defined and enable_thinking is false) -%}"
        "{%- set content = answer -%}"
        f"{{%- else -%}}{{%- set content = {_literal(opening)} + thought + {_literal(closing)} + answer -%}}"
        "{%- set has_thought = true -%}{%- endif -%}"
        f"{{%- elif {open_tag} in content -%}}{{%- set has_thought = true -%}}{{%- endif -%}}"
        "{%- if loop.last and not has_thought -%}" + _emit(_literal(template.empty_thought)) + "{%- endif -%}"
    )


def _prompt_message(template: Template) -> str:
    folded = ""
    if template.system_in_user:
        folded = (
            "{%- if loop.first and system_message -%}"
            "{%- set content = " + _expr(template.system, "system_message") + " + content -%}{%- endif -%}"
        )
    observation = template.observation or template.user
    separator = "{%- if not loop.first -%}" + _emit(_expr(template.separator)) + "{%- endif -%}"
    user = "{%- if message['role'] == 'user' -%}" + _emit(_expr(template.user, "content"))
    tool = "{%- else -%}" + _emit(_expr(observation, "content")) + "{%- endif -%}"
    return separator + folded + user + tool


def to_jinja(template: Template) -> str:
    """The jinja source of `template` (not for the `tokenizer` pseudo-template, which already has one)."""
    if template.from_tokenizer:
        raise ValueError("the tokenizer pseudo-template has no jinja of its own")
    generation = _emit(_expr(template.generation_prompt))
    pieces = [
        "{%- if messages and messages[0]['role'] == 'system' -%}",
        "{%- set system_message = messages[0]['content'] or " + _literal(template.default_system) + " -%}",
        "{%- set loop_messages = messages[1:] -%}",
        "{%- else -%}{%- set system_message = " + _literal(template.default_system) + " -%}",
        "{%- set loop_messages = messages -%}{%- endif -%}",
        "{%- set ns = namespace(last_user=-1) -%}",
        "{%- for message in loop_messages -%}{%- if message['role'] == 'user' -%}",
        "{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}",
        _emit(_expr(template.prefix)),
    ]
    if not template.system_in_user:
        pieces.append("{%- if system_message -%}" + _emit(_expr(template.system, "system_message")) + "{%- endif -%}")
    pieces += [
        "{%- for message in loop_messages -%}{%- set content = message['content'] -%}",
        "{%- if message['role'] in ['user', 'tool', 'observation'] -%}" + _prompt_message(template),
        "{%- elif message['role'] == 'assistant' -%}" + generation,
        _thinking_block(template) if template.thought_words else "",
        _emit(_expr(template.assistant, "content")),
        "{%- if loop.last -%}" + _emit("(eos_token or '')") + "{%- endif -%}" if template.efficient_eos else "",
        "{%- endif -%}{%- endfor -%}",
        "{%- if add_generation_prompt and loop_messages and loop_messages[-1]['role'] != 'assistant' -%}" + generation,
    ]
    if template.thought_words:
        pieces.append(
            "{%- if enable_thinking is defined and enable_thinking is false -%}"
            + _emit(_literal(template.empty_thought))
            + "{%- endif -%}"
        )
    pieces.append("{%- endif -%}")
    return "".join(pieces)
