"""An Ollama `Modelfile` beside every export: FROM the GGUF file, or the folder itself (Ollama imports safetensors
weights from it), the chat template in Ollama's Go-template language, the default system prompt, and the stops.

The Go template is generated from the studio template's slots, so it lays out system, user, tool and assistant
messages exactly as `render_text` does. All literal text sits inside `{{- "..." }}` actions: every line of the
template then starts with a whitespace-trimming action, and the newlines between lines are never output, while
the newlines a format needs (ChatML's "<|im_start|>user\\n") are escapes inside string literals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODELFILE = "Modelfile"


def _literal(text: str) -> str:
    # A JSON string is a valid Go interpreted string literal (\n, \", \\, \uXXXX escapes).
    return "{{- " + json.dumps(text, ensure_ascii=False) + " }}" if text else ""


def _split(slot: str | None, bos: str, eos: str) -> tuple[str, str]:
    """The text before and after `{content}` of a slot, with `{bos}`/`{eos}` filled."""
    filled = (slot or "{content}").replace("{bos}", bos).replace("{eos}", eos)
    before, _, after = filled.partition("{content}")
    return before, after


def go_template(template: Any, *, bos: str = "", eos: str = "", add_bos: bool = False) -> str:
    """Ollama's Go template equivalent to `template` for system, user, tool and assistant messages.

    `bos`/`eos` are the tokenizer's strings for the generic templates' placeholders; with `add_bos` the runtime
    adds the bos token itself, so a prefix that is only the bos token is left out.
    """
    prefix = _split(template.prefix + "{content}", bos, eos)[0]
    if add_bos and bos and prefix.startswith(bos):
        prefix = prefix[len(bos):]
    sys_before, sys_after = _split(template.system, bos, eos)
    user_before, user_after = _split(template.user, bos, eos)
    tool_before, tool_after = _split(template.observation or template.user, bos, eos)
    reply_before, reply_after = _split(template.assistant, bos, eos)
    generation = _split(template.generation_prompt + "{content}", bos, eos)[0]
    separator = _split(template.separator + "{content}", bos, eos)[0]

    def system_block(ref: str) -> str:
        return _literal(sys_before) + "{{- " + ref + " }}" + _literal(sys_after)

    before_prompt = "{{- if $seen }}" + _literal(separator) + "{{- end }}" if separator else ""
    folded = ""
    if template.system_in_user:  # llama2/mistral/gemma: the system text opens the first user message
        folded = "{{- if and (not $seen) $.System }}" + system_block("$.System") + "{{- end }}"
    lines = ["{{- $seen := false }}"]
    if prefix:
        lines.append(_literal(prefix))
    if not template.system_in_user:
        lines.append("{{- if .System }}" + system_block(".System") + "{{- end }}")
    lines += [
        "{{- range $i, $_ := .Messages }}",
        "{{- $last := eq (len (slice $.Messages $i)) 1 }}",
        '{{- if eq .Role "user" }}' + before_prompt + _literal(user_before) + folded + "{{- .Content }}"
        + _literal(user_after) + "{{- $seen = true }}",
        '{{- else if eq .Role "tool" }}' + before_prompt + _literal(tool_before) + "{{- .Content }}"
        + _literal(tool_after) + "{{- $seen = true }}",
        # A last assistant message is a reply to continue: it stays open.
        '{{- else if eq .Role "assistant" }}' + _literal(generation + reply_before) + "{{- .Content }}"
        + ("{{- if not $last }}" + _literal(reply_after) + "{{- end }}" if reply_after else ""),
        "{{- end }}",
        '{{- if and $last (ne .Role "assistant") }}' + _literal(generation) + "{{- end }}",
        "{{- end }}",
    ]
    return "\n".join(line for line in lines if line)


def stop_words(template: Any, eos: str | None) -> list[str]:
    """The template's stop words and the tokenizer's eos, without repeats."""
    return list(dict.fromkeys([*template.stop_words, *([eos] if eos else [])]))


def _quoted_block(text: str) -> str:
    if '"""' in text:
        raise ValueError('text for a Modelfile """ block must not contain """')
    return f'"""{text}"""'


def modelfile_text(gguf_name: str | None, template: Any, tokenizer: Any, *, add_bos: bool) -> str:
    """The Modelfile for `gguf_name` (a file in the same folder), else for the safetensors weights of the folder,
    with the template, system prompt and stops."""
    bos, eos = tokenizer.bos_token or "", tokenizer.eos_token or ""
    lines = ["# Written by the studio's export. Create the model with, in this folder:",
             f"#   ollama create <name> -f {MODELFILE}", f"FROM ./{gguf_name}" if gguf_name else "FROM ."]
    if template.from_tokenizer:
        where = "embedded in the GGUF file" if gguf_name else "saved with the tokenizer"
        lines.append(f"# No TEMPLATE: Ollama reads the chat template {where}.")
    else:
        lines.append("TEMPLATE " + _quoted_block(go_template(template, bos=bos, eos=eos, add_bos=add_bos)))
        if template.default_system:
            lines.append("SYSTEM " + _quoted_block(template.default_system))
    lines += [f"PARAMETER stop {json.dumps(word, ensure_ascii=False)}" for word in stop_words(template, eos)]
    return "\n".join(lines) + "\n"


def write_modelfile(folder: Path, gguf_name: str | None, template: Any, tokenizer: Any, *, add_bos: bool) -> Path:
    """Write `Modelfile` into the export folder (for its GGUF file when `gguf_name` is given) and return its path."""
    path = folder / MODELFILE
    path.write_text(modelfile_text(gguf_name, template, tokenizer, add_bos=add_bos), encoding="utf-8")
    return path
