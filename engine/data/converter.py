"""Converting raw rows (alpaca, sharegpt, openai) into canonical examples, the contract with templates and trainers.

A canonical example is a plain dict:
    {"messages": [{"role": "user" | "assistant" | "function" | "observation", "content": str}, ...],
     "system": str | None, "tools": str | None (JSON), "chosen": str | None, "rejected": str | None,
     "kto_tag": bool | None, "images": list, "videos": list, "audios": list, "source": "<dataset>:<row index>"}
Messages alternate prompt side (user/observation) and response side (assistant/function), starting with the
prompt side. Ranking examples end on the prompt side with the two replies in `chosen`/`rejected`; other
examples end with the response unless `require_response=False` allowed it to be missing.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from typing import Any

from engine.data.files import describe_row
from engine.data.registry import DatasetAttr, json_type
from engine.errors import DataError, RowsError

MAX_REPORTED_ROWS = 5
PROMPT_ROLES = ("user", "observation")
RESPONSE_ROLES = ("assistant", "function")
MEDIA_KINDS = ("images", "videos", "audios")  # the media fields of an example, named after their columns
_MISSING = object()
# Column names people commonly use for a field, to suggest a `columns` mapping that fits the file.
_SYNONYMS = {
    "prompt": ("instruction", "prompt", "question", "text", "query", "input"),
    "response": ("output", "response", "answer", "completion", "target"),
    "messages": ("conversations", "messages", "conversation", "dialog", "chat"),
    "chosen": ("chosen", "preferred", "better"),
    "rejected": ("rejected", "dispreferred", "worse"),
}
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class _Problem(Exception):
    """What is wrong with one row (a message key under `error.` and its values, minus the row)."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def convert_rows(attr: DatasetAttr, rows: list[dict], *, require_response: bool = True) -> list[dict]:
    """Canonical examples from raw rows; every bad row is reported (the first few in detail) in one DataError."""
    if not rows:
        return []
    _check_columns(attr, rows, require_response)
    convert = _convert_alpaca if attr.formatting == "alpaca" else _convert_chat
    examples: list[dict] = []
    problems: list[tuple[str, dict]] = []
    bad = 0
    for index, row in enumerate(rows):
        try:
            example = convert(attr, row, require_response)
        except _Problem as problem:
            bad += 1
            if len(problems) < MAX_REPORTED_ROWS:
                problems.append((problem.key, {"row": describe_row(rows, index), **problem.params}))
            continue
        example["source"] = f"{attr.name}:{index}"
        examples.append(example)
    if bad:
        raise RowsError(
            "dataset_bad_rows", problems, bad - len(problems), name=attr.name, file=attr.path_or_id, count=bad
        )
    return examples


def _check_columns(attr: DatasetAttr, rows: list[dict], require_response: bool) -> None:
    """Refuse mappings that no row satisfies, before reporting the same problem row by row."""
    seen = list(dict.fromkeys(key for row in rows for key in row))
    where = {"name": attr.name, "file": attr.path_or_id, "present": _names(seen)}
    required = ["prompt"] if attr.formatting == "alpaca" else ["messages"]
    if attr.formatting == "alpaca" and require_response and not attr.ranking:
        required.append("response")
    if attr.ranking:
        required += ["chosen", "rejected"]
    for key in required:
        column = attr.columns.get(key)
        if column in seen:
            continue
        guess = _guess_formatting(attr, seen, rows) if key in ("prompt", "messages") else None
        if guess:
            raise DataError("dataset_wrong_formatting", formatting=attr.formatting, suggest=guess, **where)
        if key in ("chosen", "rejected"):
            raise DataError("dataset_ranking_columns", field=key, column=column, **where)
        if attr.is_default_column(key):
            free = [c for c in seen if c not in attr.columns.values()]  # columns no other field reads
            suggest = next((c for c in _SYNONYMS.get(key, ()) if c in free), free[0] if free else "<column>")
            raise DataError("dataset_missing_column", field=key, column=column, suggest=suggest, **where)
        raise DataError("dataset_column_absent", field=key, column=column, **where)
    for key, column in attr.columns.items():
        if column and not attr.is_default_column(key) and column not in seen:
            raise DataError("dataset_column_absent", field=key, column=column, **where)


def _guess_formatting(attr: DatasetAttr, seen: list[str], rows: list[dict]) -> str | None:
    """The formatting the rows look like when the entry names the wrong one (a common registry slip)."""
    if attr.formatting != "alpaca":
        return "alpaca" if "instruction" in seen else None
    for column in ("conversations", "messages"):
        first = next((row[column] for row in rows if column in row), None)
        if isinstance(first, list) and first and isinstance(first[0], dict):
            return "openai" if "role" in first[0] else "sharegpt"
    return None


def _names(columns: list[str]) -> str:
    """Column names for a message, quoted (capped so a wide file does not flood it)."""
    shown = ", ".join(f"'{c}'" for c in columns[:30]) + (", …" if len(columns) > 30 else "")
    return shown or "(none)"


def _get(row: dict, attr: DatasetAttr, key: str, *, required: bool = False, kind: type = str) -> Any:
    """The value of a mapped field: None when unmapped or optional and absent; type-checked when present."""
    column = attr.columns.get(key)
    value = row.get(column, _MISSING) if column else _MISSING
    if value is _MISSING:
        if required:
            raise _Problem("row_missing_column", field=key, column=column, present=_names(list(row)))
        return None
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        expected = {str: "string", list: "array", dict: "object"}[kind]
        raise _Problem("row_wrong_type", field=key, column=column, expected=expected, got=json_type(value))
    return value


def _convert_alpaca(attr: DatasetAttr, row: dict, require_response: bool) -> dict:
    """One alpaca row: history pairs, then prompt (+ query), then the response (or chosen/rejected)."""
    prompt = _get(row, attr, "prompt", required=True)
    if not prompt.strip():
        raise _Problem("row_empty_prompt", column=attr.columns["prompt"])
    query = _get(row, attr, "query")
    messages = _history(row, attr)
    messages.append({"role": "user", "content": f"{prompt}\n{query}" if query and query.strip() else prompt})
    chosen = rejected = None
    if attr.ranking:
        chosen, rejected = (_reply(row, attr, key, require_response) for key in ("chosen", "rejected"))
    else:
        response = _get(row, attr, "response", required=require_response)
        if response and response.strip():
            messages.append({"role": "assistant", "content": response})
        elif require_response:
            raise _Problem("row_empty_response", column=attr.columns["response"])
    return _example(attr, row, messages, _get(row, attr, "system"), chosen, rejected)


def _history(row: dict, attr: DatasetAttr) -> list[dict]:
    """Earlier turns from an alpaca `history` column: a list of [prompt, response] pairs."""
    history = _get(row, attr, "history", kind=list) or []
    messages = []
    for index, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise _Problem("row_bad_history", column=attr.columns["history"], index=index, got=json.dumps(pair)[:80])
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def _convert_chat(attr: DatasetAttr, row: dict, require_response: bool) -> dict:
    """One sharegpt/openai row: a leading system message, then strictly alternating turns."""
    raw = _get(row, attr, "messages", required=True, kind=list)
    if not raw:
        raise _Problem("row_no_messages", column=attr.columns["messages"])
    system, turns = _read_turns(attr, raw)
    if not turns:
        raise _Problem("row_no_messages", column=attr.columns["messages"])
    tags = attr.tags
    sides = (f"{tags['user_tag']}/{tags['observation_tag']}", f"{tags['assistant_tag']}/{tags['function_tag']}")
    for position, (index, tag, role, content) in enumerate(turns):
        if role not in (PROMPT_ROLES, RESPONSE_ROLES)[position % 2]:
            raise _Problem("row_bad_order", index=index, role=tag, expected=sides[position % 2])
        if role == "user" and not content.strip():
            raise _Problem("row_empty_message", index=index, role=tag)
    index, tag, role, content = turns[-1]
    chosen = rejected = None
    if attr.ranking:
        if role in RESPONSE_ROLES:
            raise _Problem("row_ranking_ends_on_response", index=index, role=tag)
        chosen, rejected = (_reply(row, attr, key, require_response) for key in ("chosen", "rejected"))
    elif role in PROMPT_ROLES:
        if require_response:
            raise _Problem("row_ends_on_prompt", index=index, role=tag)
    elif not content.strip():
        if require_response:
            raise _Problem("row_empty_message", index=index, role=tag)
        turns.pop()  # an empty answer to predict is no answer
    messages = [{"role": role, "content": content} for _, _, role, content in turns]
    if system is None:
        system = _get(row, attr, "system")
    return _example(attr, row, messages, system, chosen, rejected)


def _read_turns(attr: DatasetAttr, raw: list) -> tuple[str | None, list[list]]:
    """The system prompt and the [index, tag, role, content] turns of a message list (order not yet checked)."""
    tags = attr.tags
    roles = {
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags["observation_tag"]: "observation",
        tags["function_tag"]: "function",
    }
    system, turns = None, []
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or tags["role_tag"] not in message:
            got = ", ".join(message) if isinstance(message, dict) else json_type(message)
            raise _Problem(
                "row_bad_message", index=index, role_tag=tags["role_tag"], content_tag=tags["content_tag"], got=got
            )
        tag = message[tags["role_tag"]]
        if tag == tags["system_tag"]:
            if index != 0:
                raise _Problem("row_system_not_first", index=index, role=tag)
            system = _content(attr, message, index) or None
            continue
        role = roles.get(tag) if isinstance(tag, str) else None
        if role is None:
            allowed = ", ".join(f"'{t}'" for t in (*roles, tags["system_tag"]))
            raise _Problem("row_bad_role", index=index, role=tag, allowed=allowed)
        if attr.formatting == "openai" and role == "assistant" and message.get("tool_calls"):
            role, content = "function", _tool_calls(message["tool_calls"], index)
        else:
            content = _content(attr, message, index)
        if attr.formatting == "openai" and role == "observation" and turns and turns[-1][2] == "observation":
            turns[-1][3] += "\n" + content  # parallel tool results answer one function turn
            continue
        turns.append([index, tag, role, content])
    return system, turns


def _content(attr: DatasetAttr, message: dict, index: int) -> str:
    """A message's text; OpenAI-style lists of {"type": "text", "text": ...} parts are joined."""
    content = message.get(attr.tags["content_tag"], _MISSING)
    if content is _MISSING:
        got = ", ".join(message)
        tags = attr.tags
        raise _Problem(
            "row_bad_message", index=index, role_tag=tags["role_tag"], content_tag=tags["content_tag"], got=got
        )
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "\n".join(part["text"] for part in content)
    if content is None and attr.formatting == "openai":
        return ""
    if not isinstance(content, str):
        raise _Problem("row_bad_content", index=index, got=json_type(content))
    return content


def _tool_calls(calls: Any, index: int) -> str:
    """OpenAI `tool_calls` as a function turn: the JSON of [{"name", "arguments"}] with arguments parsed."""
    if not isinstance(calls, list):
        raise _Problem("row_bad_tool_calls", index=index, reason=f"expected an array, got {json_type(calls)}")
    out = []
    for call in calls:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Problem("row_bad_tool_calls", index=index, reason=f"no function name in {json.dumps(call)[:80]}")
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as err:
                raise _Problem(
                    "row_bad_tool_calls", index=index, reason=f"arguments are not JSON: {err.msg}"
                ) from None
        out.append({"name": function["name"], "arguments": arguments})
    return json.dumps(out, ensure_ascii=False)


def _reply(row: dict, attr: DatasetAttr, key: str, require_response: bool) -> str:
    """A ranking reply: a string, or (sharegpt/openai) one response-side message."""
    column = attr.columns[key]
    value = row.get(column, _MISSING)
    if value is _MISSING:
        raise _Problem("row_missing_column", field=key, column=column, present=_names(list(row)))
    if isinstance(value, dict) and attr.formatting != "alpaca":
        tags = attr.tags
        if value.get(tags["role_tag"]) not in (tags["assistant_tag"], tags["function_tag"]):
            raise _Problem(
                "row_bad_reply",
                field=key,
                column=column,
                role=value.get(tags["role_tag"]),
                assistant=tags["assistant_tag"],
            )
        value = _content(attr, value, 0)
    if not isinstance(value, str):
        raise _Problem("row_wrong_type", field=key, column=column, expected="string", got=json_type(value))
    if require_response and not value.strip():
        raise _Problem("row_empty_response", column=column)
    return value


def _example(attr: DatasetAttr, row: dict, messages: list, system: str | None, chosen: Any, rejected: Any) -> dict:
    """Assemble a canonical example with the fields every formatting shares."""
    return {
        "messages": messages,
        "system": system or None,
        "tools": _tools(row, attr),
        "chosen": chosen,
        "rejected": rejected,
        "kto_tag": _kto_tag(row, attr),
        **{kind: _media(row, attr, kind) for kind in MEDIA_KINDS},
    }


def _tools(row: dict, attr: DatasetAttr) -> str | None:
    """The tools column as a JSON string (lists and objects are serialised; strings must parse)."""
    column = attr.columns.get("tools")
    value = row.get(column) if column else None
    if value is None or value == "":
        return None
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(value, str):
        raise _Problem(
            "row_wrong_type", field="tools", column=column, expected="string, array or object", got=json_type(value)
        )
    try:
        json.loads(value)
    except json.JSONDecodeError as err:
        raise _Problem("row_bad_tools", column=column, reason=f"{err.msg} at column {err.colno}") from None
    return value


def _kto_tag(row: dict, attr: DatasetAttr) -> bool | None:
    """The KTO desirable/undesirable label as a bool (CSV's "true"/"0" strings included)."""
    column = attr.columns.get("kto_tag")
    if not column:
        return None
    value = row.get(column, _MISSING)
    if value is _MISSING:
        raise _Problem("row_missing_column", field="kto_tag", column=column, present=_names(list(row)))
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise _Problem("row_bad_kto_tag", column=column, value=json.dumps(value))


def _media(row: dict, attr: DatasetAttr, key: str) -> list:
    """Image/video/audio references as a list of strings (a single one becomes a one-item list).

    Hugging Face `datasets` Image/Audio/Video cells (and parquet files written from them) hold `{"bytes", "path"}`
    objects, which LLaMA-Factory accepts too: their bytes become a `data:` URL (else their path), so an example stays
    plain JSON for the cache and the worker processes.
    """
    column = attr.columns.get(key)
    value = row.get(column) if column else None
    if value is None or value == "":
        return []
    refs = []
    for item in value if isinstance(value, list) else [value]:
        ref = _media_ref(item)
        if ref is None:
            raise _Problem("row_wrong_type", field=key, column=column,
                           expected="string, array of strings or {bytes, path} object", got=json_type(item))
        refs.append(ref)
    return refs


def _media_ref(item: Any) -> str | None:
    """One media reference as a string: a path or URL as written, or a `{"bytes", "path"}` cell; None if neither."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        data, path = item.get("bytes"), item.get("path")
        if isinstance(data, (bytes, bytearray)) and data:
            mime = mimetypes.guess_type(path)[0] if isinstance(path, str) else None
            return f"data:{mime or 'application/octet-stream'};base64,{base64.b64encode(data).decode()}"
        if isinstance(path, str) and path:
            return path
    return None


def fill_placeholders(examples: list[dict], values: dict[str, str]) -> list[dict]:
    """Replace `{{key}}` (e.g. `{{name}}`, `{{author}}` in the identity data) wherever `values` has the key."""

    def fill(text: str | None) -> str | None:
        if not text:
            return text
        return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], text)

    return [
        {
            **example,
            "messages": [{**message, "content": fill(message["content"])} for message in example["messages"]],
            "system": fill(example.get("system")),
            "chosen": fill(example.get("chosen")),
            "rejected": fill(example.get("rejected")),
        }
        for example in examples
    ]


def example_text(example: dict) -> str:
    """The plain text of an example for pre-training: its message contents joined by newlines."""
    return "\n".join(message["content"] for message in example["messages"] if message["content"])
