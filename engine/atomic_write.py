"""Files written whole or not at all: a temporary file with a unique name in the same folder, then a rename.

Readers (the studio polling a run folder, a second engine started on the same folder) never see half a file, and
two writers of the same file never trip over each other's temporary file.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one rename; the data is on disk before the name points at it."""
    path = Path(path)
    # A unique name per call: a fixed `.name.tmp` made two writers of one folder crash each other.
    # O_EXCL with mode 0o666 (the umask applies): unlike mkstemp's 0o600, readers see the usual permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2))
