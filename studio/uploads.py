"""Uploaded dataset files: detect their columns, guess the mapping, check every row and register them.

Reading the file happens in a child process (`python -m engine.data.inspection`), streaming and stopped at the
row cap: a few KB of parquet can hold a million rows, and reading them must never cost the web server's memory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from engine.data import REGISTRY_FILE, SUPPORTED_EXTENSIONS, load_registry
from engine.data.registry import check_entry
from engine.errors import DataError, StudioError
from engine.runfolder import file_lock
from studio.supervisor import run_json_child
from studio.workspace import dataset_dir as workspace_dataset_dir

UPLOADS = "uploads"
CHECK_ROWS = 100_000  # rows checked at registration outside demo mode; later rows are checked when training
INSPECT_TIMEOUT_S = 120.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# Column names people use for each field, best first (matched case-insensitively).
_SYNONYMS = {
    "prompt": ("instruction", "prompt", "question", "query", "text"),
    "query": ("input",),
    "response": ("output", "response", "answer", "completion", "target"),
    "history": ("history",),
    "messages": ("conversations", "messages", "conversation", "dialog", "dialogue", "chat"),
    "system": ("system", "system_prompt"),
    "tools": ("tools", "functions"),
    "chosen": ("chosen", "preferred"),
    "rejected": ("rejected", "dispreferred"),
    "kto_tag": ("kto_tag", "label"),
    "images": ("images", "image"),
    "videos": ("videos", "video"),
    "audios": ("audios", "audio"),
}


def inspect_in_child(*args: str) -> dict[str, Any]:
    """Run `python -m engine.data.inspection <args>` and return its JSON answer; its StudioError is raised here."""
    return run_json_child([sys.executable, "-m", "engine.data.inspection", *args], timeout=INSPECT_TIMEOUT_S,
                          on_timeout=StudioError("inspection_timeout", seconds=f"{INSPECT_TIMEOUT_S:g}"),
                          on_crash=lambda reason: StudioError("inspection_failed", reason=reason))


def detect_columns(path: str | Path, max_rows: int | None = None) -> list[str]:
    """Column names of an uploaded json / jsonl / csv / parquet / txt file (union over its first rows).

    With `max_rows` (the demo's row cap) a file with more rows is refused, reading no further than the cap.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("upload_missing", path=str(path))
    limit = [] if max_rows is None else ["--limit", str(max_rows)]
    answer = inspect_in_child("columns", os.path.abspath(path), *limit)
    if answer["more_than_limit"]:
        raise StudioError("demo_upload_rows", limit=max_rows)
    return answer["columns"]


def suggest_mapping(columns: list[str], formatting: str) -> dict[str, str]:
    """A best-guess `columns` mapping (field → column) for a file with these columns; unguessed fields are left out."""
    fields = ("messages",) if formatting in ("sharegpt", "openai") else ("prompt", "query", "response", "history")
    fields += ("system", "tools", "chosen", "rejected", "kto_tag", "images", "videos", "audios")
    by_lower = {column.lower(): column for column in reversed(columns)}  # the first spelling wins
    mapping: dict[str, str] = {}
    for field in fields:
        for synonym in _SYNONYMS[field]:
            column = by_lower.get(synonym)
            if column is not None and column not in mapping.values():
                mapping[field] = column
                break
    if "prompt" not in mapping and "query" in mapping and formatting == "alpaca":
        mapping["prompt"] = mapping.pop("query")  # a file with only input/output: the input is the prompt
    return mapping


def register_upload(src_path: str | Path, dataset_dir: str | Path | None, name: str, formatting: str,
                    columns: dict[str, str], tags: dict | None = None, ranking: bool = False,
                    max_rows: int | None = None) -> dict:
    """Copy an uploaded file to `<dataset_dir>/uploads/<name><ext>`, check its rows, and register it; returns the entry.

    Nothing is registered (and the copy is removed) when a row is bad or there are more than `max_rows` rows;
    without `max_rows` the first CHECK_ROWS rows are checked. dataset_info.json is replaced atomically and its
    previous version kept as dataset_info.json.bak. The default folder (`data`, None) is the studio's own
    (`studio.workspace.dataset_dir`), never the shipped one.
    """
    base = Path(os.path.abspath(workspace_dataset_dir(dataset_dir)))
    registry_file = base / REGISTRY_FILE
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DataError("dataset_name_invalid", name=name)
    src = Path(src_path)
    if not src.is_file():
        raise DataError("upload_missing", path=str(src))
    ext = src.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError("dataset_file_unsupported", name=name, file=src.name, ext=ext or "(none)",
                        supported=", ".join(SUPPORTED_EXTENSIONS))
    entry = _new_entry(name, ext, formatting, columns, tags, ranking)
    check_entry(name, entry, str(registry_file))
    (base / UPLOADS).mkdir(parents=True, exist_ok=True)
    with file_lock(base / UPLOADS / ".register.lock"):
        registry = load_registry(base) if registry_file.is_file() else {}
        if name in registry:
            raise DataError("dataset_name_taken", name=name, registry=str(registry_file))
        owner = next((key for key, other in registry.items() if other.get("file_name") == entry["file_name"]), None)
        if owner is not None:
            raise DataError("upload_file_taken", file=entry["file_name"], owner=owner)
        target = base / entry["file_name"]
        copied = not (target.exists() and os.path.samefile(src, target))
        if copied:
            shutil.copyfile(src, target)
        try:
            limit = ["--limit", str(max_rows), "--refuse-more"] if max_rows is not None else ["--limit",
                                                                                           str(CHECK_ROWS)]
            inspect_in_child("check", str(base), name, json.dumps(entry), *limit)
            _write_registry(registry_file, {**registry, name: entry})
        except BaseException:
            if copied:
                target.unlink(missing_ok=True)
            raise
    return entry


def _new_entry(name: str, ext: str, formatting: str, columns: dict[str, str] | None, tags: dict | None,
               ranking: bool) -> dict[str, Any]:
    """The dataset_info.json entry of an upload (empty mappings and tags left out)."""
    entry: dict[str, Any] = {"file_name": f"{UPLOADS}/{name}{ext}", "formatting": formatting}
    mapped = {key: value for key, value in (columns or {}).items() if value}
    if mapped:
        entry["columns"] = mapped
    if tags and any(tags.values()):
        entry["tags"] = {key: value for key, value in tags.items() if value}
    if ranking:
        entry["ranking"] = True
    return entry


def _write_registry(path: Path, registry: dict) -> None:
    """Replace dataset_info.json atomically (temp file + rename), keeping the previous version as .bak."""
    text = json.dumps(registry, indent=2, ensure_ascii=False) + "\n"
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        if path.exists():
            shutil.copy2(path, path.with_name(path.name + ".bak"))
        os.replace(temp, path)
    except OSError as err:
        Path(temp).unlink(missing_ok=True)
        raise DataError("dataset_registry_write_failed", path=str(path), reason=str(err)) from None


def discard_upload(path: str | Path, upload_folder: str | Path) -> bool:
    """Delete a file the browser uploaded once it has been copied where it belongs; True when it was deleted.

    Only files inside Gradio's upload folder are touched (a path typed on the command line is the user's own);
    the folder Gradio made for the file goes too when it is left empty.
    """
    file = Path(os.path.abspath(path))
    folder = Path(os.path.abspath(upload_folder))
    if folder not in file.parents or not file.is_file():
        return False
    file.unlink()
    if file.parent != folder and not any(file.parent.iterdir()):
        file.parent.rmdir()
    return True
