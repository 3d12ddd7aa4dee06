"""Tokenized rows stored as columns: one flat int32 array per key and the offsets where each row starts.

Python lists of ints cost about 36 bytes per token; these arrays cost 4, load from disk in milliseconds (memory
mapped, so ranks on one machine share the pages) and cross process boundaries without pickling every int.
A row comes back as the usual `{"input_ids": [...], "labels": [...], ...}` dict of lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

OFFSETS_FILE = "offsets.npy"


class TokenColumns:
    """Rows whose keys (input_ids, labels, position_ids, …) all hold one int per token of the row."""

    def __init__(self, offsets: Any, values: dict[str, Any]) -> None:
        self.offsets = offsets  # int64, len(rows) + 1 entries, starting at 0
        self.values = values  # key -> int32, offsets[-1] entries

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, list[int]]], keys: Sequence[str] | None = None) -> TokenColumns:
        """Columns holding `rows` (every row must have the same keys, each as long as its input_ids)."""
        import numpy as np

        keys = list(keys if keys is not None else (rows[0] if rows else ("input_ids", "labels")))
        lengths = np.fromiter((len(row["input_ids"]) for row in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        values = {}
        for key in keys:
            if any(len(row[key]) != length for row, length in zip(rows, lengths.tolist(), strict=True)):
                raise ValueError(f"every row's {key!r} must be as long as its input_ids")
            flat = chain.from_iterable(row[key] for row in rows)
            values[key] = np.fromiter(flat, dtype=np.int32, count=total)
        return cls(offsets, values)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def keys(self) -> list[str]:
        """The per-token keys of every row."""
        return list(self.values)

    @property
    def num_tokens(self) -> int:
        """Tokens over all rows."""
        return int(self.offsets[-1])

    def row(self, index: int) -> dict[str, list[int]]:
        """Row `index` as a dict of lists (negative indices count from the end)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} out of range for {len(self)} rows")
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return {key: values[start:end].tolist() for key, values in self.values.items()}

    def to_rows(self) -> list[dict[str, list[int]]]:
        """Every row as a dict of lists."""
        bounds = self.offsets.tolist()
        flat = {key: values.tolist() for key, values in self.values.items()}
        return [{key: ids[bounds[i]:bounds[i + 1]] for key, ids in flat.items()} for i in range(len(self))]

    def save(self, folder: Path) -> None:
        """Write the columns as `.npy` files into `folder` (created; the caller makes the write atomic)."""
        import numpy as np

        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / OFFSETS_FILE, np.ascontiguousarray(self.offsets, dtype=np.int64))
        for key, values in self.values.items():
            np.save(folder / f"{key}.npy", np.ascontiguousarray(values, dtype=np.int32))

    @classmethod
    def load(cls, folder: Path, keys: Sequence[str]) -> TokenColumns:
        """Columns saved by `save`, memory mapped; ValueError or OSError when the files are missing or inconsistent."""
        import numpy as np

        offsets = np.load(folder / OFFSETS_FILE, mmap_mode="r")
        values = {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in keys}
        if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype != np.int64 or int(offsets[0]) != 0:
            raise ValueError(f"{folder / OFFSETS_FILE} is not a valid offsets array")
        if len(offsets) > 1 and bool((np.diff(offsets) < 0).any()):
            raise ValueError(f"{folder / OFFSETS_FILE} is not sorted")
        for key, array in values.items():
            if array.ndim != 1 or array.dtype != np.int32 or len(array) != int(offsets[-1]):
                raise ValueError(f"{folder / (key + '.npy')} does not match its offsets")
        return cls(offsets, values)


# Split name ("train", "eval") → its rows; "eval" is absent when there is no eval data.
Splits = dict[str, TokenColumns]
