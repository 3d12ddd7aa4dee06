"""The `studio` command: `launch` opens the web studio; every other command is the engine's CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Dispatch without importing Gradio for engine commands (and without torch for `launch`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "launch":
        from studio.launch import main as launch_main

        return launch_main(argv[1:])
    from engine.cli import main as engine_main

    return engine_main(argv)
