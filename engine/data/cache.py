"""Saved tokenized rows: the automatic tokenization cache, and the folder a user names in `tokenized_path`.

An entry is a folder holding `meta.json` and one folder of `TokenColumns` per split (`train`, `eval`). It is written
into a temporary sibling and renamed into place, and read and written under a file lock: readers never see half an
entry, and processes that need the same entry at once (the ranks of a distributed run) tokenize once; the others
wait for the lock, then load. An entry that cannot be read is tokenized again, with a warning, never a crash.

A run that sets `tokenized_path` but names no dataset trains from the entry saved there alone (LLaMA-Factory's
"tokenized_path without dataset"); it cannot tokenize again, so a missing or damaged entry is an error there.

The cache lives in `tokenized_cache_dir()` (env STUDIO_TOKENIZED_CACHE, default `saves/.cache/tokenized` under
STUDIO_HOME), one folder per key (see `engine.data.fingerprint`). Nothing is evicted: delete the folder to reclaim
the space.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.data.columns import Splits, TokenColumns
from engine.data.fingerprint import CACHE_VERSION, CacheKey, canonical_json
from engine.errors import DataError
from engine.paths import tokenized_cache_dir
from engine.runfolder import file_lock

logger = logging.getLogger(__name__)

META_FILE = "meta.json"
FORMAT = "llm-studio tokenized dataset"


class UnreadableEntry(Exception):
    """A saved entry whose files are missing, truncated or inconsistent."""


def read_entry(folder: Path) -> tuple[dict[str, Any], Splits]:
    """The meta data and the splits of a saved entry; UnreadableEntry when it is damaged or from another version."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("version") != CACHE_VERSION:
            raise UnreadableEntry(f"{folder / META_FILE} is not a version {CACHE_VERSION} tokenized dataset")
        splits = {name: TokenColumns.load(folder / name, meta["keys"]) for name in meta["splits"]}
        for name, columns in splits.items():
            if len(columns) != meta["splits"][name]:
                raise UnreadableEntry(f"{folder / name} holds {len(columns)} rows, {meta['splits'][name]} expected")
    except UnreadableEntry:
        raise
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as err:
        raise UnreadableEntry(f"{type(err).__name__}: {err}") from err
    if "train" not in splits:
        raise UnreadableEntry(f"{folder} holds no train split")
    return meta, splits


def write_entry(folder: Path, splits: Splits, extra_meta: dict[str, Any]) -> None:
    """Save `splits` as the entry `folder`, replacing what is there, atomically (temporary sibling, then rename)."""
    keys = next(iter(splits.values())).keys
    meta = {"format": FORMAT, "version": CACHE_VERSION, "created": datetime.now(timezone.utc).isoformat(),
            "keys": keys, "splits": {name: len(columns) for name, columns in splits.items()}, **extra_meta}
    temporary = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for name, columns in splits.items():
            columns.save(temporary / name)
        (temporary / META_FILE).write_text(canonical_json(meta), encoding="utf-8")
        _replace_folder(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _replace_folder(source: Path, target: Path) -> None:
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    elif target.exists():
        # Renaming the old entry aside is atomic; removing it afterwards need not be.
        aside = target.parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.rename(source, target)


def _describe(splits: Splits) -> str:
    return ", ".join(f"{len(columns)} {name}" for name, columns in splits.items())


def cached_splits(key: CacheKey, tokenize: Callable[[], Splits], *, overwrite: bool = False,
                  root: Path | None = None) -> Splits:
    """The splits saved under `key`, else `tokenize()`'s, saved for next time (re-tokenized when `overwrite`)."""
    root = root if root is not None else tokenized_cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        logger.warning("The tokenization cache %s cannot be created (%s); tokenizing without it.", root, err)
        return tokenize()
    folder = root / key.digest
    with file_lock(root / f"{key.digest}.lock"):
        if not overwrite and (folder / META_FILE).is_file():
            try:
                _, splits = read_entry(folder)
            except UnreadableEntry as err:
                logger.warning("The cached tokenized data in %s is unreadable (%s); tokenizing again.", folder, err)
            else:
                logger.info("Loaded the tokenized data (%s sequences) from the cache %s instead of tokenizing; "
                            "set overwrite_cache: true to tokenize again.", _describe(splits), folder)
                return splits
        splits = tokenize()
        try:
            write_entry(folder, splits, {"key": key.digest, "inputs": key.inputs})
        except OSError as err:
            logger.warning("Could not save the tokenized data to the cache %s (%s).", folder, err)
        else:
            logger.info("Saved the tokenized data to the cache %s.", folder)
        return splits


def saved_splits(path: Path, settings: dict[str, Any], tokenize: Callable[[], Splits] | None, *,
                 overwrite: bool = False) -> Splits:
    """`tokenized_path`: the splits saved in `path` (the datasets are not read), else tokenized and saved there.

    `settings` (stage, template, tokenizer, cutoff_len, …) are stored with the rows; loading rows saved with other
    settings warns, since the datasets are not read to check them. `tokenize` is None when the run names no
    dataset: the saved rows are then all it has, and a folder that does not hold them is an error.
    """
    path = Path(path).expanduser()
    if tokenize is None:
        saved_train_rows(path, overwrite=overwrite)  # refuses a missing entry before anything is created
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path.parent / f".{path.name}.lock"):
        if (path / META_FILE).is_file() and not overwrite:
            try:
                meta, splits = read_entry(path)
            except UnreadableEntry as err:
                if tokenize is None:
                    raise DataError("tokenized_path_unreadable", path=str(path), reason=str(err)[:300]) from None
                logger.warning("tokenized_path %s is unreadable (%s); tokenizing the datasets again.", path, err)
            else:
                _warn_changed(path, meta.get("settings", {}), settings)
                logger.info("Loaded the tokenized dataset (%s sequences) from tokenized_path %s; the datasets were "
                            "not read.", _describe(splits), path)
                return splits
        elif not (path / META_FILE).is_file() and not _missing_or_empty(path):
            raise DataError("tokenized_path_not_ours", path=str(path))
        if tokenize is None:  # another process removed the entry since saved_train_rows saw it
            raise DataError("tokenized_path_empty", path=str(path))
        splits = tokenize()
        write_entry(path, splits, {"settings": settings})
        logger.info("Saved the tokenized dataset to tokenized_path %s; runs with this tokenized_path load it "
                    "instead of reading the datasets.", path)
        return splits


def saved_train_rows(path: Path, *, overwrite: bool = False) -> int:
    """How many training rows the entry saved in `tokenized_path` holds (its meta.json only is read), for a run
    that names no dataset and so trains from that entry alone; a clear error when there is none to train from."""
    path = Path(path).expanduser()
    if overwrite:
        raise DataError("tokenized_path_overwrite_no_dataset", path=str(path))
    if not (path / META_FILE).is_file():
        raise DataError("tokenized_path_empty", path=str(path))
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        ours = meta.get("format") == FORMAT and meta.get("version") == CACHE_VERSION
        rows = meta["splits"]["train"] if ours else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        reason = f"{type(err).__name__}: {err}"[:300]
        raise DataError("tokenized_path_unreadable", path=str(path), reason=reason) from None
    if isinstance(rows, bool) or not isinstance(rows, int):
        reason = f"{path / META_FILE} is not a version {CACHE_VERSION} tokenized dataset"
        raise DataError("tokenized_path_unreadable", path=str(path), reason=reason)
    return rows


def _missing_or_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _warn_changed(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    changed = sorted(k for k in set(saved) | set(current)
                     if canonical_json(saved.get(k)) != canonical_json(current.get(k)))
    if changed:
        logger.warning("tokenized_path %s was tokenized with other settings (%s differ); set overwrite_cache: true "
                       "or choose another tokenized_path to tokenize again.", path, ", ".join(changed))
