"""The checks a job must pass before it starts, run in an engine process of their own: `python -m engine check`.

The studio never reads a user's dataset in its own process (a small compressed file can expand to gigabytes, and
one visitor's slow read must not hold up another's Start). It writes the job's config, runs
`python -m engine check <train|eval|export|judge> <config.yaml>` with a memory cap and a timeout, and reads one JSON
object from the last line of its output: `{"ok": true, "rows": N}` (training rows the job will use, null when a
dataset comes from a hub) or `{"ok": false, "error": {"key": …, "params": {…}}}`, a StudioError it can show in
the page's language. Torch-free, like everything the checks need.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from engine.config import RunConfig, load_config
from engine.errors import StudioError, error_to_json
from engine.validation import validate_config

CHECKED_COMMANDS = ("train", "eval", "export", "judge")
MEMORY_ENV = "STUDIO_CHECK_MEMORY_MB"  # address-space cap for the check process (the studio sets it)


def run_checks(command: str, config: RunConfig) -> dict[str, Any]:
    """Every check `command` needs before launch; returns what the caller may want to know (training rows)."""
    if command == "train":
        from engine.data.pipeline import check_local_data

        validate_config(config, "train")
        return {"rows": check_local_data(config)}
    if command == "eval":
        from engine.eval import check_eval_config

        check_eval_config(config)
        return {"rows": None}
    if command == "export":
        from engine.export.run import check_export

        check_export(config)
        return {"rows": None}
    if command == "judge":  # the predictions are read and the endpoint is asked once (a dead one is named now)
        from engine.eval.judge import JudgeClient, check_judge_config

        rows = check_judge_config(config)
        client = JudgeClient(config)
        try:
            client.probe()
        finally:
            client.close()
        return {"rows": len(rows)}
    raise ValueError(f"no checks for {command!r}; known: {', '.join(CHECKED_COMMANDS)}")


def cap_memory() -> None:
    """Limit this process's address space when asked, so a hostile file fails here rather than exhausting RAM."""
    megabytes = os.environ.get(MEMORY_ENV)
    if not megabytes:
        return
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    limit = int(megabytes) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def print_outcome(work: Callable[[], dict[str, Any]]) -> int:
    """Run `work` and print its outcome as one JSON line: `{"ok": true, **result}`, or `{"ok": false, "error": …}`
    for a StudioError or running out of memory; the exit code 0 when it passed. The protocol of every engine child
    the studio reads (`check`, `estimate`)."""
    try:
        result = {"ok": True, **work()}
    except StudioError as err:
        result = {"ok": False, "error": error_to_json(err)}
    except MemoryError:
        result = {"ok": False, "error": error_to_json(StudioError("check_out_of_memory"))}
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 1


def main(command: str, config_path: str, overrides: list[str]) -> int:
    """`python -m engine check COMMAND CONFIG.yaml`: print one JSON line with the outcome; exit 0 when it passed."""
    cap_memory()
    return print_outcome(lambda: run_checks(command, load_config(config_path, overrides)))
