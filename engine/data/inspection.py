"""Look into a dataset file without loading all of it: its columns, and its rows up to a cap, read streaming.

The studio runs `python -m engine.data.inspection columns|check ...` instead of reading user files itself: a tiny
file can expand to gigabytes of rows (a 6 KB parquet holds a million), and that must cost a short-lived child
process stopped at the row cap, never the web server. Parquet is read batch by batch, JSON lines, CSV and text
line by line; a JSON array is read whole up to `WHOLE_JSON_BYTES`, beyond that one object at a time. The answer
is one JSON object on stdout: the result, or `{"error": ...}` with the message key and values of a StudioError.

Torch-free and Gradio-free (the standard library, plus pyarrow for parquet).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.data.converter import convert_rows
from engine.data.files import Rows, _Span, parse_jsonl_line, read_file
from engine.data.registry import DatasetAttr, json_type
from engine.errors import DataError, StudioError, error_to_json
from engine.preflight import cap_memory

DETECT_ROWS = 100  # rows whose keys make up the detected columns
WHOLE_JSON_BYTES = 16 * 1024 * 1024  # a JSON array this small is parsed at once, for json's exact error positions
_PARQUET_BATCH = 1024
_JSON_CHUNK = 1 << 16


def stream_rows(path: Path, shown: str, name: str, limit: int) -> tuple[Rows, bool]:
    """Up to `limit` rows of one file (with their lines when the format has lines), and whether more follow."""
    where = {"name": name, "file": shown}
    ext = path.suffix.lower()
    if ext == ".parquet":
        records: Iterator[tuple[int | None, dict]] = _parquet_rows(path, where)
    elif ext == ".arrow" or (ext == ".json" and path.stat().st_size <= WHOLE_JSON_BYTES):
        rows, lines = read_file(path, shown, name)
        records = iter(zip(lines or [None] * len(rows), rows, strict=True))
    elif ext == ".json":
        records = _json_array_rows(path, where)
    elif ext in (".jsonl", ".csv", ".txt"):
        records = {".jsonl": _jsonl_rows, ".csv": _csv_rows, ".txt": _txt_rows}[ext](path, where)
    else:
        read_file(path, shown, name)  # raises the unsupported-type message
        raise AssertionError(ext)
    rows, lines, more = Rows(), [], False
    for line, row in records:
        if len(rows) == limit:
            more = True
            break
        rows.append(row)
        lines.append(line)
    if not rows and not more:
        raise DataError("dataset_file_empty", **where)
    rows.spans = [_Span(0, shown, lines if lines and lines[0] is not None else None)]
    return rows, more


def _parquet_rows(path: Path, where: dict) -> Iterator[tuple[None, dict]]:
    """A parquet file's rows as plain Python values, one record batch at a time."""
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
        for batch in reader.iter_batches(batch_size=_PARQUET_BATCH):
            for row in batch.to_pylist():
                yield None, row
    except (OSError, ValueError, TypeError) as err:  # what pyarrow raises for corrupt or foreign files
        raise DataError("dataset_file_unreadable", kind="Parquet", reason=str(err), **where) from None


def _lines(path: Path, where: dict) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file, decoded line by line; bad bytes are reported with offset and line."""
    offset = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError("dataset_file_not_utf8", byte=f"{raw[err.start]:02x}", offset=offset + err.start,
                                line=number, **where) from None
            if number == 1:
                text = text.removeprefix("\ufeff")  # a BOM from Excel/Notepad is not part of the data
            offset += len(raw)
            yield number, text


def _jsonl_rows(path: Path, where: dict) -> Iterator[tuple[int, dict]]:
    """One JSON object per line; blank lines are skipped."""
    for number, line in _lines(path, where):
        if line.strip():
            yield number, parse_jsonl_line(line, number, where)


def _txt_rows(path: Path, where: dict) -> Iterator[tuple[int, dict]]:
    """One `{"text": line}` row per non-empty line."""
    for number, line in _lines(path, where):
        if line.strip():
            yield number, {"text": line.rstrip()}


def _csv_rows(path: Path, where: dict) -> Iterator[tuple[int, dict]]:
    """A CSV file with a header row, every value a string; a row's number is the line it starts on."""
    reader = csv.reader(text for _, text in _lines(path, where))
    try:
        header = next(reader, None)
        if header is None:
            return
        start = reader.line_num + 1
        for record in reader:
            if any(field.strip() for field in record):
                if len(record) != len(header):
                    raise DataError("dataset_csv_ragged", line=start, count=len(record), expected=len(header),
                                    **where)
                yield start, dict(zip(header, record, strict=True))
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError("dataset_file_unreadable", kind="CSV", reason=f"line {reader.line_num}: {err}",
                        **where) from None


def _json_array_rows(path: Path, where: dict) -> Iterator[tuple[None, dict]]:
    """The objects of a large JSON array, decoded one at a time from a sliding buffer."""
    decoder = json.JSONDecoder()
    try:
        with open(path, encoding="utf-8") as f:
            yield from _decode_array(f, decoder, where)
    except UnicodeDecodeError as err:
        raise DataError("dataset_file_unreadable", kind="JSON", reason=str(err), **where) from None


def _decode_array(f: Any, decoder: json.JSONDecoder, where: dict) -> Iterator[tuple[None, dict]]:
    """The objects of the JSON array read from `f`; only the object being decoded is held in memory."""
    buffer, lines_before, index = f.read(_JSON_CHUNK).removeprefix("\ufeff"), 0, 0
    pos = _skip(buffer, 0)
    if buffer[pos:pos + 1] != "[":
        raise DataError("dataset_json_not_array", type="object" if buffer[pos:pos + 1] == "{" else "value", **where)
    pos += 1
    while True:
        pos = _skip(buffer, pos)
        if buffer[pos:pos + 1] == "]":
            return
        try:
            row, end = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError as err:
            more = f.read(_JSON_CHUNK)
            if not more or len(buffer) - pos > WHOLE_JSON_BYTES:  # the end, or an object no sane file has
                truncated = not more and err.pos >= len(buffer.rstrip())
                raise DataError("dataset_json_truncated" if truncated else "dataset_json_invalid",
                                line=lines_before + err.lineno, column=err.colno, reason=err.msg, **where) from None
            lines_before += buffer.count("\n", 0, pos)
            buffer, pos = buffer[pos:] + more, 0
            continue
        if not isinstance(row, dict):
            raise DataError("dataset_json_row_not_object", row=index, type=json_type(row), **where)
        yield None, row
        index, pos = index + 1, _skip(buffer, end)
        if buffer[pos:pos + 1] == ",":
            pos += 1


def _skip(text: str, pos: int) -> int:
    """The first position at or after `pos` that is not whitespace."""
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def detect_columns(path: Path, limit: int | None = None) -> dict[str, Any]:
    """Column names (union over the first DETECT_ROWS rows) and, with `limit`, whether more rows than it follow."""
    rows, more = stream_rows(path, path.name, path.stem, DETECT_ROWS if limit is None else limit)
    more = limit is not None and more
    columns = list(dict.fromkeys(key for row in rows[:DETECT_ROWS] for key in row))
    return {"columns": columns, "rows": len(rows), "more_than_limit": more}


def check_entry_rows(base: Path, name: str, entry: dict, limit: int, refuse_more: bool) -> dict[str, Any]:
    """Convert the first `limit` rows of a new registry entry's file, so a bad row is reported now, by row.

    With `refuse_more`, a file with more rows than `limit` is refused (the demo's row cap).
    """
    attr = DatasetAttr(name=name, load_from="file", path_or_id=entry["file_name"], formatting=entry["formatting"],
                       ranking=entry.get("ranking", False), columns=dict(entry.get("columns", {})),
                       tags=dict(entry.get("tags", {})))
    path = base / entry["file_name"]
    rows, more = stream_rows(path, entry["file_name"], name, limit)
    if more and refuse_more:
        raise StudioError("demo_upload_rows", limit=limit)
    convert_rows(attr, rows, require_response=not is_plain_text(attr, rows))
    return {"rows": len(rows), "more_than_limit": more}


def is_plain_text(attr: DatasetAttr, rows: list[dict]) -> bool:
    """Whether a dataset is pre-training text: alpaca rows with a prompt and no response column anywhere."""
    if attr.formatting != "alpaca" or attr.ranking or attr.columns.get("kto_tag"):
        return False
    column = attr.columns.get("response")
    return not column or not any(column in row for row in rows)


def main(argv: list[str] | None = None) -> int:
    """`columns FILE [--limit N]` or `check DATASET_DIR NAME ENTRY_JSON --limit N [--refuse-more]`."""
    cap_memory()  # a hostile upload fails here, within the cap the studio sets, not in its memory
    parser = argparse.ArgumentParser(prog="python -m engine.data.inspection")
    commands = parser.add_subparsers(dest="command", required=True)
    columns = commands.add_parser("columns")
    columns.add_argument("file")
    columns.add_argument("--limit", type=int)
    check = commands.add_parser("check")
    check.add_argument("dataset_dir")
    check.add_argument("name")
    check.add_argument("entry")
    check.add_argument("--limit", type=int, required=True)
    check.add_argument("--refuse-more", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "columns":
            result = detect_columns(Path(args.file), args.limit)
        else:
            result = check_entry_rows(Path(args.dataset_dir), args.name, json.loads(args.entry), args.limit,
                                      args.refuse_more)
    except StudioError as err:
        result = {"error": error_to_json(err)}
    print(json.dumps(result, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
