"""Uploaded dataset files: detect their columns, guess the mapping, check every row and register them; a table
with its images, videos or audio comes as a zip (or as files side by side) and is unpacked safely first.

Reading the file happens in a child process (`python -m engine.data.inspection`, and `python -m studio.uploads`
for the media paths a table names), streaming and stopped at the row cap: a few KB of parquet can hold a million
rows, and reading them must never cost the web server's memory.
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data import REGISTRY_FILE, SUPPORTED_EXTENSIONS, DatasetAttr, convert_rows, load_registry
from engine.data.files import describe_row
from engine.data.inspection import stream_rows
from engine.data.media import EXTENSIONS, KINDS
from engine.data.registry import check_entry
from engine.errors import DataError, StudioError, error_to_json
from engine.preflight import cap_memory
from engine.runfolder import file_lock
from studio.demo_settings import DemoSettings
from studio.supervisor import run_json_child
from studio.workspace import dataset_dir as workspace_dataset_dir

UPLOADS = "uploads"
CHECK_ROWS = 100_000  # rows checked at registration outside demo mode; later rows are checked when training
INSPECT_TIMEOUT_S = 120.0
TABLE_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet")  # the tables an upload may hold
MEDIA_EXTENSIONS = tuple(sorted({ext for kind in KINDS for ext in EXTENSIONS[kind]}))
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


def inspect_in_child(*args: str, module: str = "engine.data.inspection") -> dict[str, Any]:
    """Run `python -m <module> <args>` and return its JSON answer; its StudioError is raised here."""
    return run_json_child([sys.executable, "-m", module, *args], timeout=INSPECT_TIMEOUT_S,
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


# --- uploads with media: a zip, or a table with its media files


@dataclass(frozen=True)
class UnpackLimits:
    """How much one upload may unpack to (the public demo's are tighter, see `unpack_limits`)."""

    max_mb: float = 2048.0
    max_files: int = 20_000


def unpack_limits(settings: DemoSettings | None) -> UnpackLimits:
    """The workstation's limits, or the demo's: four uploads' worth of files, 200 of them at most."""
    return UnpackLimits() if settings is None else UnpackLimits(4 * settings.max_upload_mb, 200)


def is_plain_upload(paths: list[str]) -> bool:
    """Whether an upload is one table file alone (registered as it is, media paths left to the data folder)."""
    return len(paths) == 1 and Path(paths[0]).suffix.lower() in TABLE_EXTENSIONS


def unpack_upload(paths: list[str], into: Path, limits: UnpackLimits, *, table_only: bool = False) -> Path:
    """Put an upload's files under `into`, keeping a zip's folders, and return the table's path there.

    Every name is checked before anything is written: no absolute path or `..` (nothing lands outside `into`),
    only tables and media files (a Mac's `__MACOSX/` and `._*` copies are skipped), at most `limits` in count and
    unpacked size. The table is the one file with a table extension, or the one nearest the top when there are
    several (a LLaMA-Factory `dataset_info.json` is not a table); a tie is refused with the candidates named.
    Files uploaded side by side keep only their names (the browser sends no folders): zip a folder to keep it.
    """
    entries = _entries(paths)
    tables = [name for name, _, _ in entries
              if Path(name).suffix.lower() in TABLE_EXTENSIONS and Path(name).name != REGISTRY_FILE]
    if not tables:
        raise DataError("upload_no_table", tables=", ".join(TABLE_EXTENSIONS))
    depth = min(name.count("/") for name in tables)
    top = [name for name in tables if name.count("/") == depth]
    if len(top) > 1:
        raise DataError("upload_many_tables", tables=", ".join(top))
    if len(entries) > limits.max_files:
        raise DataError("upload_too_many_files", count=len(entries), limit=limits.max_files)
    total = sum(size for _, _, size in entries)
    if total > limits.max_mb * 1024 * 1024:
        raise DataError("upload_too_big", size=f"{total / 1024 / 1024:.1f}", limit=f"{limits.max_mb:g}")
    archives: dict[str, zipfile.ZipFile] = {}
    try:
        for name, (path, member), size in entries:
            if table_only and name != top[0]:
                continue
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if member is not None and path not in archives:
                archives[path] = zipfile.ZipFile(path)
            try:
                _copy_entry(archives[path].open(member) if member is not None else open(path, "rb"), name, target,
                            size)
            except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as err:
                # A bad checksum, an encrypted member, a compression method Python lacks (e.g. Deflate64).
                raise DataError("upload_zip_bad", file=Path(path).name, reason=f"{name}: {err}") from None
    finally:
        for archive in archives.values():
            archive.close()
    return into / top[0]


def _entries(paths: list[str]) -> list[tuple[str, tuple[str, str | None], int]]:
    """(name inside the upload, (file, zip member or None), size) of every file an upload holds, names checked."""
    entries = []
    for path in paths:
        if Path(path).suffix.lower() != ".zip":
            entries.append((Path(path).name, (path, None), os.path.getsize(path)))
            continue
        try:
            with zipfile.ZipFile(path) as archive:
                members = [info for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError) as err:
            raise DataError("upload_zip_bad", file=Path(path).name, reason=str(err)) from None
        for info in members:
            name = info.filename.replace("\\", "/")
            parts = name.split("/")
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts:
                raise DataError("upload_zip_unsafe", file=Path(path).name, entry=info.filename)
            if parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] in (".DS_Store", "Thumbs.db"):
                continue
            entries.append(("/".join(p for p in parts if p not in ("", ".")), (path, info.filename), info.file_size))
    for name, _, _ in entries:
        if Path(name).suffix.lower() not in TABLE_EXTENSIONS + MEDIA_EXTENSIONS:
            raise DataError("upload_file_type", entry=name, tables=" ".join(TABLE_EXTENSIONS),
                            media=" ".join(MEDIA_EXTENSIONS))
    return entries


def _copy_entry(source: Any, name: str, target: Path, size: int) -> None:
    """Copy one file of an upload (an open binary file), refusing one that grows past the size it declared."""
    with source as src, open(target, "wb") as dst:
        copied = 0
        while chunk := src.read(1 << 20):
            copied += len(chunk)
            if copied > size:
                raise DataError("upload_too_big", size=f"{copied / 1024 / 1024:.1f}", limit=f"{size / 1024 / 1024:.1f}")
            dst.write(chunk)


def register_media_upload(paths: list[str], dataset_dir: str | Path | None, name: str, formatting: str,
                          columns: dict[str, str], tags: dict | None = None, ranking: bool = False,
                          max_rows: int | None = None, limits: UnpackLimits = UnpackLimits()) -> dict:
    """Register an upload of a table with its media files (`unpack_upload`); returns the registry entry.

    The table's paths are relative to its folder in the upload, as LLaMA-Factory's are to the dataset folder, so
    each file the table names is placed at that same path in the dataset folder (an identical file already there
    is kept; a different one is refused, never overwritten) and the table is registered as `register_upload`
    does. A file the table names that the upload lacks is refused with its row. Nothing stays on failure.
    """
    base = Path(os.path.abspath(workspace_dataset_dir(dataset_dir)))
    (base / UPLOADS).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=base / UPLOADS, prefix=".unpack-"))
    placed: list[Path] = []
    try:
        table = unpack_upload(paths, staging, limits)
        entry = _new_entry(name, table.suffix.lower(), formatting, columns, tags, ranking)
        if any(columns.get(kind) for kind in KINDS):
            refs = inspect_in_child("media-refs", str(table), name, json.dumps(entry),
                                    str(max_rows or CHECK_ROWS), module="studio.uploads")["refs"]
            _place_media(_referenced_files(refs, table.parent), table.parent, base, placed)
        return register_upload(table, base, name, formatting, columns, tags, ranking, max_rows)
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _referenced_files(refs: list[list[str]], root: Path) -> list[str]:
    """The relative paths the table names (URLs left to training), each checked to be in the upload."""
    files, missing = [], []
    for kind, ref, row in refs:
        if re.match(r"^(https?://|data:)", ref):
            continue
        relative = os.path.normpath(ref.replace("\\", "/"))
        if os.path.isabs(relative) or relative.split(os.sep)[0] == "..":
            raise DataError("upload_media_outside", file=ref, row=row, column=kind)
        if not (root / relative).is_file():
            missing.append((kind, ref, row))
        files.append(relative)
    if missing:
        kind, ref, row = missing[0]
        raise DataError("upload_media_missing", file=ref, row=row, column=kind, others=len(missing) - 1)
    return list(dict.fromkeys(files))


def _place_media(files: list[str], root: Path, base: Path, placed: list[Path]) -> None:
    """Move each file from the unpacked upload to the same path in the dataset folder, adding each file it creates
    to `placed` as it goes (so a refusal halfway can take them back)."""
    real_base = os.path.realpath(base)
    for relative in files:
        source, target = root / relative, base / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.commonpath([os.path.realpath(target.parent), real_base]) != real_base:
            raise DataError("upload_media_taken", file=relative)  # a linked folder (e.g. a shipped one)
        if target.exists() or target.is_symlink():
            if target.is_symlink() or not filecmp.cmp(source, target, shallow=False):
                raise DataError("upload_media_taken", file=relative)
            continue
        shutil.move(source, target)
        placed.append(target)


def list_media_refs(table: Path, name: str, entry: dict, limit: int) -> dict[str, Any]:
    """(in a child) Each media path the table's first `limit` rows name, once, with the first row naming it."""
    attr = DatasetAttr(name=name, load_from="file", path_or_id=table.name, formatting=entry["formatting"],
                       ranking=entry.get("ranking", False), columns=dict(entry.get("columns", {})),
                       tags=dict(entry.get("tags", {})))
    rows, _ = stream_rows(table, table.name, name, limit)
    refs: dict[tuple[str, str], str] = {}
    for index, example in enumerate(convert_rows(attr, rows, require_response=False)):
        for kind in KINDS:
            for ref in example[kind]:
                refs.setdefault((kind, ref), describe_row(rows, index))
    return {"refs": [[kind, ref, row] for (kind, ref), row in refs.items()]}


def main(argv: list[str]) -> int:
    """`media-refs TABLE NAME ENTRY_JSON LIMIT`: answer `list_media_refs` (or the error) as one JSON line."""
    cap_memory()
    try:
        _, table, name, entry, limit = argv
        answer = list_media_refs(Path(table), name, json.loads(entry), int(limit))
    except StudioError as err:
        answer = {"error": error_to_json(err)}
    sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
