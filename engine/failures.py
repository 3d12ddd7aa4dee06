"""What ended a job, in one line a user can act on: a full disk, memory running out, a config mistake, a crash.

The job lifecycle (`engine.jobs`) records this line as status.json's `error`. Torch-free: exception types from
torch and safetensors are recognised by name and message, never imported.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from engine.errors import StudioError

# Text by which libraries that wrap the OS error (safetensors, tokenizers: Rust's io::Error) say the disk is full.
_DISK_FULL_TEXT = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")
# torch.save's zip writer reports any failed write without the cause; on a nearly full disk that cause is space.
_WRITE_FAILED_TEXT = "file write failed"
_NEARLY_FULL = 64 << 20
_OOM_TYPES = ("OutOfMemoryError", "MemoryError")
_OOM_TEXT = ("out of memory", "cuda_error_out_of_memory", "cublas_status_alloc_failed")
# What each job kind's user can lower when memory runs out.
_MEMORY_HINTS = {
    "train": "lower per_device_train_batch_size (raise gradient_accumulation_steps to keep the effective batch) or "
             "cutoff_len; LoRA with quantization_bit: 4 and gradient_checkpointing also save memory",
    "eval": "lower per_device_eval_batch_size (batch_size for a benchmark) or cutoff_len",
    "export": "the export holds the whole model in memory: close other programs or use a machine with more memory; "
              "a smaller per_device_train_batch_size or cutoff_len does not apply here",
}


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, once each."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def mount_point(path: Path) -> Path:
    """The mount point of the disk that holds `path` (or would hold it, for a file not yet written)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def format_size(n: float) -> str:
    """Bytes as `12.3 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return None


def disk_full_path(exc: BaseException, run_dir: Path) -> str | None:
    """The path whose write failed because the disk is full (the run folder when unnamed), or None."""
    for item in exception_chain(exc):
        if isinstance(item, OSError) and item.errno in (errno.ENOSPC, errno.EDQUOT):
            return str(item.filename or run_dir)
        text = str(item).lower()
        if any(marker in text for marker in _DISK_FULL_TEXT):
            return str(getattr(item, "filename", None) or run_dir)
        if _WRITE_FAILED_TEXT in text and (_free_bytes(run_dir) or 0) < _NEARLY_FULL:
            return str(run_dir)
    return None


def describe_disk_full(path: str, run_dir: Path, kind: str) -> str:
    """The message for a full disk: the file, the disk and its free space, and what to do."""
    mount = mount_point(Path(path))
    free = _free_bytes(Path(path))
    room = f"{format_size(free)} free" if free is not None else "free space unknown"
    folder_key = "export_dir" if kind == "export" else "output_dir"
    again = " (resume_from_checkpoint: true continues from the last complete checkpoint)" if kind == "train" else ""
    return (f"The disk is full: writing {path} failed; the disk mounted at {mount} has {room}. Free space on it "
            f"(old runs, checkpoints, caches) or set {folder_key} to a folder on a disk with room, then start "
            f"again{again}.")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says memory (RAM or an accelerator's) ran out."""
    for item in exception_chain(exc):
        names = {cls.__name__ for cls in type(item).__mro__}
        if names & set(_OOM_TYPES):
            return True
        if isinstance(item, RuntimeError) and any(marker in str(item).lower() for marker in _OOM_TEXT):
            return True
    return False


def describe_out_of_memory(exc: BaseException, kind: str) -> str:
    """The message for memory running out, with what to lower."""
    # torch's OutOfMemoryError is an accelerator's; a MemoryError is the machine's RAM.
    device = type(exc).__name__ == "OutOfMemoryError" or "cuda" in str(exc).lower()
    where = "GPU memory" if device else "memory (RAM)"
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    hint = _MEMORY_HINTS.get(kind, _MEMORY_HINTS["train"])
    return f"Out of {where}: {detail}. To fit, {hint}."


def describe_failure(exc: BaseException, run_dir: Path, kind: str) -> str:
    """One line saying what ended the job: the user's message for a StudioError, else the cause in plain words."""
    if isinstance(exc, StudioError):
        return exc.message()  # English, as every other cause in status.json
    full = disk_full_path(exc, run_dir)
    if full is not None:
        return describe_disk_full(full, run_dir, kind)
    if is_out_of_memory(exc):
        return describe_out_of_memory(exc, kind)
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
