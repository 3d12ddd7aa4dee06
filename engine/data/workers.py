"""Tokenizing in a pool of processes (`preprocessing_num_workers`): chunks keep their order, the result is the same.

Workers are forked where that is safe (Linux), so they start in milliseconds and inherit the tokenizer; elsewhere
they are spawned and receive the tokenizer and template pickled, once per worker. A chunk that fails in a worker is
run again in this process, so the error the user sees is the real one, with its message and traceback.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Below this many rows, starting processes costs more than the tokenizing they would share.
MIN_PARALLEL_ROWS = 2000

# What a pool worker runs: set once per worker process by `_start_worker`, never in the parent.
_worker_task: dict[str, Any] = {}


class _Failed:
    """A worker's answer for a chunk that raised (the parent re-runs the chunk to raise the error itself)."""


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def worker_count(requested: int | None, rows: int) -> int:
    """Processes to tokenize `rows` rows with: 1 unless more were asked for and the data is big enough to gain."""
    if not requested or requested <= 1 or rows < MIN_PARALLEL_ROWS:
        return 1
    cpus = available_cpus()
    if requested > cpus:
        logger.info("preprocessing_num_workers=%d, but only %d CPUs are available: using %d.", requested, cpus, cpus)
    return max(min(requested, cpus), 1)


def _start_method() -> str:
    # fork is the cheap one, and safe on Linux; macOS and Windows need spawn.
    return "fork" if sys.platform.startswith("linux") else "spawn"


def _start_worker(fn: Callable[..., Any], shared: tuple) -> None:
    _worker_task["fn"], _worker_task["shared"] = fn, shared


def _run_chunk(chunk: Sequence[Any]) -> Any:
    try:
        return _worker_task["fn"](chunk, *_worker_task["shared"])
    except Exception:  # re-raised by the parent, which re-runs the chunk (exceptions do not all pickle well)
        return _Failed()


def map_chunks(fn: Callable[..., T], items: Sequence[Any], shared: tuple = (), *, chunk_size: int,
               workers: int = 1) -> list[T]:
    """`[fn(chunk, *shared) for chunk in chunks of items]`, in `workers` processes when more than one; order kept.

    `fn` must be a module-level function (so spawned workers can import it); `shared` is sent to each worker once.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    chunks = [items[start:start + chunk_size] for start in range(0, len(items), chunk_size)]
    if workers <= 1 or len(chunks) <= 1:
        return [fn(chunk, *shared) for chunk in chunks]
    context = multiprocessing.get_context(_start_method())
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context,
                             initializer=_start_worker, initargs=(fn, shared)) as pool:
        results = list(pool.map(_run_chunk, chunks))
    return [fn(chunk, *shared) if isinstance(result, _Failed) else result
            for chunk, result in zip(chunks, results, strict=True)]
