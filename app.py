"""The hosted demo's entry point: Hugging Face Spaces and ModelScope Studio run `python app.py`.

It serves the studio in demo mode (`studio launch --demo`). The platforms run it from a plain checkout of the
repository with requirements.txt installed but not the package itself, so the repository root goes on `sys.path`
first. Host, port and root path come from the platform's GRADIO_SERVER_NAME, GRADIO_SERVER_PORT and
GRADIO_ROOT_PATH, which `studio launch` reads; nothing about the platform is hard-coded here. Extra command-line
arguments are passed on (`python app.py --lang zh`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent


def run(argv: list[str]) -> int:
    """Start the studio in demo mode with `argv` as further launch options; returns the exit code."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    # The studio starts the engine as `python -m engine ...`; PYTHONPATH lets those children find the source tree
    # too, whatever their working directory (STUDIO_HOME may point elsewhere, e.g. a persistent volume).
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    from studio.launch import main

    return main(["--demo", *argv])


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
