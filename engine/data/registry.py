"""The dataset registry: reading and checking `dataset_info.json`, and turning entries into `DatasetAttr`s.

The schema is LLaMA-Factory's, all of it, so registries written for it (its stock `data/dataset_info.json`
included) load here. Only the entries a run uses are checked: a registry of a hundred hub datasets is not refused
because one entry the run never reads is broken. Where an entry does several things at once the choice is
LLaMA-Factory's: a hub id wins over `script_url`, which wins over `cloud_file_name`; among the hubs, ModelScope
(USE_MODELSCOPE_HUB) or OpenMind (USE_OPENMIND_HUB) when asked for or when the entry has no `hf_hub_url`.

Deliberate differences, all in entries a run uses: unknown keys are refused instead of ignored (a typo like
`"formating"` would otherwise silently do nothing), as are `columns`/`tags` keys that the formatting never reads
and `file_name` beside another source (which one was meant is a guess); a `columns` mapping fills in only the
fields it names (the others keep their defaults).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError
from engine.paths import resolve_dataset_dir

REGISTRY_FILE = "dataset_info.json"
FORMATTINGS = ("alpaca", "sharegpt", "openai")
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url")
# In LLaMA-Factory's order of precedence: the first one an entry has is where it loads from.
SOURCE_KEYS = (*HUB_KEYS, "script_url", "cloud_file_name", "file_name")
CLOUD_PROTOCOLS = ("s3://", "gs://", "gcs://")
ENTRY_KEYS = (*SOURCE_KEYS, "formatting", "ranking", "subset", "split", "folder", "num_samples", "columns", "tags")

_COMMON_COLUMNS = ("system", "tools", "images", "videos", "audios", "chosen", "rejected", "kto_tag")
COLUMN_KEYS = {
    "alpaca": ("prompt", "query", "response", "history", *_COMMON_COLUMNS),
    "sharegpt": ("messages", *_COMMON_COLUMNS),
    "openai": ("messages", *_COMMON_COLUMNS),
}
TAG_KEYS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
DEFAULT_TAGS = {
    "alpaca": {},
    "sharegpt": {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        "observation_tag": "observation",
        "function_tag": "function_call",
        "system_tag": "system",
    },
    "openai": {
        "role_tag": "role",
        "content_tag": "content",
        "user_tag": "user",
        "assistant_tag": "assistant",
        "observation_tag": "tool",
        "function_tag": "function_call",
        "system_tag": "system",
    },
}


def default_columns(formatting: str, ranking: bool = False) -> dict[str, str | None]:
    """The column each field reads when the entry's `columns` does not say otherwise."""
    columns: dict[str, str | None] = dict.fromkeys(COLUMN_KEYS[formatting])
    if formatting == "alpaca":
        columns.update(prompt="instruction", query="input", response="output")
    else:
        columns["messages"] = "conversations" if formatting == "sharegpt" else "messages"
    if ranking:
        columns.update(chosen="chosen", rejected="rejected")
    return columns


@dataclass
class DatasetAttr:
    """One registry entry, resolved: where to load it from and how to read its columns."""

    name: str
    load_from: str  # "file" | "hf_hub" | "ms_hub" | "om_hub" | "script" | "cloud_file"
    path_or_id: str
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Filled here too so a DatasetAttr built by hand (tests, the studio) reads like a registry one.
        self.columns = {**default_columns(self.formatting, self.ranking), **self.columns}
        self.tags = {**DEFAULT_TAGS[self.formatting], **self.tags}

    def is_default_column(self, key: str) -> bool:
        """Whether `key` reads its default column (so a missing column is a hint, not a broken mapping)."""
        return self.columns.get(key) == default_columns(self.formatting, self.ranking).get(key)


def registry_path(dataset_dir: str | Path | None) -> Path:
    """The `dataset_info.json` of a dataset folder (the default folder when None)."""
    return resolve_dataset_dir(dataset_dir) / REGISTRY_FILE


def json_type(value: Any) -> str:
    """The JSON name of a value's type (`string`, `array`, `object`, ...), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def load_registry(dataset_dir: str | Path | None = None) -> dict[str, dict]:
    """A folder's `dataset_info.json` as raw entries by dataset name.

    Only the file itself is checked (readable JSON object); each entry is checked when it is used
    (`get_dataset_attrs`), so a broken entry blocks only the runs that name it.
    """
    path = registry_path(dataset_dir)
    if not path.is_file():
        raise DataError("dataset_registry_missing", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError("dataset_registry_not_utf8", path=str(path), offset=err.start) from None
    try:
        registry = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            "dataset_registry_invalid_json", path=str(path), line=err.lineno, column=err.colno, reason=err.msg
        ) from None
    if not isinstance(registry, dict):
        raise DataError("dataset_registry_not_object", path=str(path), type=json_type(registry))
    return registry


def check_entry(name: str, entry: Any, registry: str) -> None:
    """Refuse an entry that cannot be loaded, saying which key is wrong."""
    where = {"name": name, "registry": registry}
    if not isinstance(entry, dict):
        raise DataError("dataset_entry_not_object", type=json_type(entry), **where)
    unknown = [key for key in entry if key not in ENTRY_KEYS]
    if unknown:
        raise DataError("dataset_entry_unknown_key", keys=", ".join(unknown), allowed=", ".join(ENTRY_KEYS), **where)
    sources = [key for key in SOURCE_KEYS if key in entry]
    if not sources:
        raise DataError("dataset_entry_no_source", **where)
    if "file_name" in entry and len(sources) > 1:
        raise DataError("dataset_entry_two_sources", keys=", ".join(sources), **where)
    for key in sources:
        _check_value(entry, key, "a non-empty string", lambda v: isinstance(v, str) and v.strip() != "", where)
    _check_value(entry, "cloud_file_name", "an s3://, gs:// or gcs:// path",
                 lambda v: any(v.startswith(p) and len(v) > len(p) for p in CLOUD_PROTOCOLS), where)
    formatting = entry.get("formatting", "alpaca")
    if formatting not in FORMATTINGS:
        raise DataError("dataset_entry_bad_formatting", value=formatting, allowed=", ".join(FORMATTINGS), **where)
    _check_value(entry, "ranking", "true or false", lambda v: isinstance(v, bool), where)
    _check_value(entry, "split", "a non-empty string", lambda v: isinstance(v, str) and v.strip() != "", where)
    for key in ("subset", "folder"):
        _check_value(entry, key, "a string or null", lambda v: v is None or isinstance(v, str), where)
    _check_value(
        entry,
        "num_samples",
        "a whole number of at least 1, or null",
        lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
        where,
    )
    _check_mapping(entry, "columns", COLUMN_KEYS[formatting], formatting, where)
    if "tags" in entry and formatting == "alpaca":
        raise DataError("dataset_entry_tags_alpaca", **where)
    _check_mapping(entry, "tags", TAG_KEYS, formatting, where)


def _check_value(entry: dict, key: str, expected: str, ok: Any, where: dict) -> None:
    """Refuse `entry[key]` when present and `ok(value)` is false."""
    if key in entry and not ok(entry[key]):
        raise DataError(
            "dataset_entry_bad_value", setting=key, expected=expected, value=json.dumps(entry[key]), **where
        )


def _check_mapping(entry: dict, key: str, allowed: tuple[str, ...], formatting: str, where: dict) -> None:
    """Refuse a `columns`/`tags` object that is not a name → string mapping over the allowed names."""
    if key not in entry:
        return
    mapping = entry[key]
    if not isinstance(mapping, dict):
        raise DataError(
            "dataset_entry_bad_value", setting=key, expected="an object", value=json.dumps(mapping), **where
        )
    unknown = [name for name in mapping if name not in allowed]
    if unknown:
        raise DataError(
            "dataset_entry_bad_mapping",
            setting=key,
            keys=", ".join(unknown),
            formatting=formatting,
            allowed=", ".join(allowed),
            **where,
        )
    for name, value in mapping.items():
        # null unmaps a column (e.g. "query": null); tags always need a value.
        if not (isinstance(value, str) and value != "") and not (key == "columns" and value is None):
            raise DataError(
                "dataset_entry_bad_value",
                setting=f"{key}.{name}",
                expected="a column name" if key == "columns" else "a non-empty string",
                value=json.dumps(value),
                **where,
            )


def env_enabled(name: str) -> bool:
    """Whether an on/off environment variable such as USE_MODELSCOPE_HUB is switched on."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "y", "on")


def _split_names(names: list[str] | str | None) -> list[str]:
    """Dataset names from a comma-separated string or a list, spaces stripped, blanks dropped."""
    if names is None:
        return []
    parts = names.split(",") if isinstance(names, str) else [p for n in names for p in str(n).split(",")]
    return [p.strip() for p in parts if p.strip()]


def _known(registry: dict) -> str:
    """The registered names, for 'did you mean' style messages."""
    names = sorted(registry)
    shown = ", ".join(names[:40]) + (f", … ({len(names) - 40} more)" if len(names) > 40 else "")
    return shown or "(none)"


def get_dataset_attrs(names: list[str] | str, dataset_dir: str | Path | None = None) -> list[DatasetAttr]:
    """Resolve dataset names (a list or a comma-separated string) to their registry entries."""
    registry = load_registry(dataset_dir)
    path = str(registry_path(dataset_dir))
    wanted = _split_names(names)
    if not wanted:
        raise DataError("dataset_none_given", registry=path, known=_known(registry))
    attrs = []
    for name in wanted:
        if name not in registry:
            raise DataError("dataset_not_registered", name=name, registry=path, known=_known(registry))
        check_entry(name, registry[name], path)
        attrs.append(_attr_from_entry(name, registry[name]))
    return attrs


def _source(entry: dict) -> tuple[str, str]:
    """(load_from, path or id) of a checked entry, by LLaMA-Factory's precedence and hub switches."""
    has_hf = "hf_hub_url" in entry
    if "ms_hub_url" in entry and (env_enabled("USE_MODELSCOPE_HUB") or not has_hf):
        return "ms_hub", entry["ms_hub_url"]
    if "om_hub_url" in entry and (env_enabled("USE_OPENMIND_HUB") or not has_hf):
        return "om_hub", entry["om_hub_url"]
    if has_hf:
        return "hf_hub", entry["hf_hub_url"]
    if "script_url" in entry:
        return "script", entry["script_url"]
    if "cloud_file_name" in entry:
        return "cloud_file", entry["cloud_file_name"]
    return "file", entry["file_name"]


def _attr_from_entry(name: str, entry: dict) -> DatasetAttr:
    """A DatasetAttr from a checked registry entry."""
    load_from, path_or_id = _source(entry)
    return DatasetAttr(
        name=name,
        load_from=load_from,
        path_or_id=path_or_id,
        formatting=entry.get("formatting", "alpaca"),
        ranking=entry.get("ranking", False),
        subset=entry.get("subset"),
        split=entry.get("split", "train"),
        folder=entry.get("folder"),
        num_samples=entry.get("num_samples"),
        columns=dict(entry.get("columns", {})),
        tags=dict(entry.get("tags", {})),
    )


def dataset_kind(attr: DatasetAttr) -> str:
    """Which training stages can use a dataset: "ranking" (DPO/RM), "kto", or "sft" (pre-training takes any)."""
    if attr.ranking:
        return "ranking"
    if attr.columns.get("kto_tag"):
        return "kto"
    return "sft"
