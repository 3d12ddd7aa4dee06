"""Reading a registered local dataset file (or folder of files) into raw rows, with precise errors.

Plain Python only (pandas for parquet and pyarrow for arrow, imported when needed) so the studio can list and
preview datasets without loading torch or `datasets`.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.data.registry import DatasetAttr, json_type, registry_path
from engine.errors import DataError
from engine.paths import resolve_dataset_dir

SUPPORTED_EXTENSIONS = (".json", ".jsonl", ".csv", ".parquet", ".txt", ".arrow")


@dataclass
class _Span:
    """Where a run of rows came from: the first row's index, the file, and each row's line when known."""

    start: int
    file: str
    lines: list[int] | None


class Rows(list):
    """A list of raw rows that remembers which file and line each came from, for error messages."""

    def __init__(self, rows: Any = (), spans: list[_Span] | None = None) -> None:
        super().__init__(rows)
        self.spans: list[_Span] = spans or []


def describe_row(rows: list, index: int) -> str:
    """`index`, plus `file:line` (or `file[i]` inside a folder) when the rows know where they came from."""
    spans: list[_Span] = getattr(rows, "spans", [])
    if not spans:
        return str(index)
    span = spans[bisect.bisect_right([s.start for s in spans], index) - 1]
    local = index - span.start
    if span.lines is not None and local < len(span.lines):
        return f"{index} ({span.file}:{span.lines[local]})"
    if len(spans) > 1:
        return f"{index} ({span.file}[{local}])"
    return str(index)


def read_rows(attr: DatasetAttr, dataset_dir: str | Path | None = None) -> Rows:
    """Raw rows (dicts) of a dataset stored as a local file or a folder of files under `dataset_dir`."""
    if attr.load_from != "file":
        raise ValueError(f"read_rows reads local files; dataset '{attr.name}' loads from {attr.load_from}")
    base = Path(os.path.abspath(resolve_dataset_dir(dataset_dir)))
    path = _resolve(attr, base)
    files = _folder_files(attr, path, base) if path.is_dir() else [path]
    return read_files([(file, file.relative_to(base).as_posix()) for file in files], attr.name)


def read_files(files: list[tuple[Path, str]], name: str) -> Rows:
    """The rows of several files, one after the other; `files` are (path, name shown in messages) pairs."""
    rows, spans = Rows(), []
    for file, shown in files:
        file_rows, lines = read_file(file, shown, name)
        spans.append(_Span(len(rows), shown, lines))
        rows.extend(file_rows)
    rows.spans = spans
    return rows


def _resolve(attr: DatasetAttr, base: Path) -> Path:
    """The absolute path of `file_name`, refusing anything outside the dataset folder."""
    # Lexical, not resolve(): a symlink the user placed inside the folder on purpose is fine; `..` is not.
    path = Path(os.path.normpath(base / attr.path_or_id))
    if path != base and base not in path.parents:
        raise DataError("dataset_path_outside", name=attr.name, file=attr.path_or_id, dataset_dir=str(base))
    if not path.exists():
        raise DataError(
            "dataset_file_missing",
            name=attr.name,
            file=attr.path_or_id,
            path=str(path),
            registry=str(registry_path(base)),
        )
    return path


def _folder_files(attr: DatasetAttr, folder: Path, base: Path) -> list[Path]:
    """The data files of a folder entry (hidden files skipped), in name order."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(
            "dataset_folder_empty", name=attr.name, file=attr.path_or_id, supported=", ".join(SUPPORTED_EXTENSIONS)
        )
    for file in files:
        check_extension(file, file.relative_to(base).as_posix(), attr.name)
    return files


def check_extension(path: Path, shown: str, name: str) -> str:
    """The file's extension, refusing the ones we cannot read."""
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise DataError(
            "dataset_file_unsupported",
            name=name,
            file=shown,
            ext=ext or "(none)",
            supported=", ".join(SUPPORTED_EXTENSIONS),
        )
    return ext


def read_file(path: Path, shown: str, name: str) -> tuple[list[dict], list[int] | None]:
    """Rows of one file, and the line each row starts on when the format has lines."""
    ext = check_extension(path, shown, name)
    where = {"name": name, "file": shown}
    if ext == ".parquet":
        rows, lines = _read_parquet(path, where), None
    elif ext == ".arrow":
        rows, lines = _read_arrow(path, where), None
    else:
        text = _decode(path, where)
        if not text.strip():
            raise DataError("dataset_file_empty", **where)
        if ext == ".json":
            rows, lines = _read_json(text, where)
        elif ext == ".jsonl":
            rows, lines = _read_jsonl(text, where)
        elif ext == ".csv":
            rows, lines = _read_csv(text, where)
        else:
            rows, lines = _read_txt(text)
    if not rows:
        raise DataError("dataset_file_empty", **where)
    return rows, lines


def _decode(path: Path, where: dict) -> str:
    """The file's text, refusing non-UTF-8 bytes with their offset and line."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError("dataset_file_unreadable", kind=path.suffix, reason=str(err), **where) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            "dataset_file_not_utf8",
            byte=f"{data[err.start]:02x}",
            offset=err.start,
            line=data.count(b"\n", 0, err.start) + 1,
            **where,
        ) from None
    return text.removeprefix("\ufeff")  # a BOM from Excel/Notepad is not part of the data


def _read_json(text: str, where: dict) -> tuple[list[dict], list[int] | None]:
    """A JSON array of objects; JSON-lines content in a .json file is accepted too."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        # "Extra data" after a first object means one object per line: read it as JSON lines.
        if text.lstrip().startswith("{") and err.msg == "Extra data":
            return _read_jsonl(text, where)
        _raise_json_error(err, text, where)
    if isinstance(data, dict) and "\n" not in text.strip():
        return [data], [1]  # a single JSON line
    if not isinstance(data, list):
        raise DataError("dataset_json_not_array", type=json_type(data), **where)
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError("dataset_json_row_not_object", row=index, type=json_type(row), **where)
    return data, None


def _raise_json_error(err: json.JSONDecodeError, text: str, where: dict) -> None:
    """Turn a JSON syntax error into a DataError, telling a cut-off file from a typo."""
    # An unterminated string can only end at the end of the file (raw newlines are a different error).
    truncated = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")
    raise DataError(
        "dataset_json_truncated" if truncated else "dataset_json_invalid",
        line=err.lineno,
        column=err.colno,
        reason=err.msg,
        **where,
    ) from None


def _read_jsonl(text: str, where: dict) -> tuple[list[dict], list[int]]:
    """One JSON object per line; blank lines are skipped."""
    rows, lines = [], []
    # split("\n"), not splitlines(): U+2028 and friends may legally sit inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        rows.append(parse_jsonl_line(line, number, where))
        lines.append(number)
    return rows, lines


def parse_jsonl_line(line: str, number: int, where: dict) -> dict:
    """One JSON Lines row, or a DataError naming the line and what is wrong with it."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError("dataset_jsonl_invalid", line=number, column=err.colno, reason=err.msg, **where) from None
    if not isinstance(row, dict):
        raise DataError("dataset_jsonl_not_object", line=number, type=json_type(row), **where)
    return row


def _read_csv(text: str, where: dict) -> tuple[list[dict], list[int]]:
    """A CSV file with a header row; every value stays a string."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines = [], []
    try:
        header = next(reader)
        start = reader.line_num + 1
        for record in reader:
            if not any(field.strip() for field in record):
                start = reader.line_num + 1
                continue
            if len(record) != len(header):
                raise DataError("dataset_csv_ragged", line=start, count=len(record), expected=len(header), **where)
            rows.append(dict(zip(header, record, strict=True)))
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(
            "dataset_file_unreadable", kind="CSV", reason=f"line {reader.line_num}: {err}", **where
        ) from None
    return rows, lines


def _read_txt(text: str) -> tuple[list[dict], list[int]]:
    """One `{"text": line}` row per non-empty line."""
    rows, lines = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            rows.append({"text": line.rstrip()})
            lines.append(number)
    return rows, lines


def _read_parquet(path: Path, where: dict) -> list[dict]:
    """A parquet file's rows as plain Python values."""
    import pandas as pd  # only parquet needs it; keeps listing and previewing light

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for corrupt files
        raise DataError("dataset_file_unreadable", kind="Parquet", reason=str(err), **where) from None
    return [_plain(row) for row in frame.to_dict(orient="records")]


def _read_arrow(path: Path, where: dict) -> list[dict]:
    """An Arrow IPC file's rows: the stream format `datasets` writes, or the random-access file format."""
    try:
        import pyarrow as pa
    except ImportError as err:
        raise DataError("dataset_file_unreadable", kind="Arrow", reason=str(err), **where) from None
    errors = []
    for open_table in (pa.ipc.open_stream, pa.ipc.open_file):
        try:
            with pa.memory_map(str(path)) as source:
                return [_plain(row) for row in open_table(source).read_all().to_pylist()]
        except (OSError, ValueError, TypeError) as err:  # pyarrow's ArrowInvalid is a ValueError
            errors.append(str(err))
    raise DataError("dataset_file_unreadable", kind="Arrow", reason=errors[-1], **where)


def _plain(value: Any) -> Any:
    """numpy arrays/scalars and NaN from pandas → the list/str/int/None the converter expects."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy array or scalar
        return _plain(value.tolist())
    if (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType":
        return None
    return value
