"""The terminal chat (`studio chat CONFIG.yaml`): type a message, watch the reply stream in.

`clear` starts a new conversation, `exit` (or end of input, Ctrl-D) quits; Ctrl-C stops a reply being written.
Replies go to stdout, everything else (loading logs, errors) to stderr, so the chat can be piped.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import IO, Any

from engine.errors import StudioError
from engine.inference.backend import ChatBackend, Completion

EXIT_WORDS = ("exit", "quit")
CLEAR_WORDS = ("clear",)


def chat_turn(backend: ChatBackend, history: list[dict[str, Any]], out: IO[str], system: str | None = None) -> str:
    """Stream one reply to the conversation in `history` into `out`; returns the reply's text."""
    final: Completion | None = None
    for item in backend.stream(history, system):
        if isinstance(item, Completion):
            final = item
        else:
            out.write(item)
            out.flush()
    return final.text if final is not None else ""


def run_chat(backend: ChatBackend, read: Callable[[str], str] = input, out: IO[str] | None = None,
             err: IO[str] | None = None) -> int:
    """The read–reply loop; returns the exit code (0 on `exit` or end of input)."""
    out, err = out or sys.stdout, err or sys.stderr
    lang = os.environ.get("STUDIO_LANG", "en")
    out.write(f"Chatting with {backend.model_id}. Type `clear` to start over, `exit` to quit.\n")
    history: list[dict[str, Any]] = []
    while True:
        try:
            query = read("\nUser: ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:
            out.write("\n")
            return 0
        command = query.strip()
        if not command:
            continue
        if command.lower() in EXIT_WORDS:
            return 0
        if command.lower() in CLEAR_WORDS:
            history = []
            out.write("History cleared.\n")
            continue
        history.append({"role": "user", "content": query})
        out.write("Assistant: ")
        out.flush()
        try:
            reply = chat_turn(backend, history, out)
        except KeyboardInterrupt:
            out.write("\n")
            history.pop()
            continue
        except StudioError as error:
            out.write("\n")
            err.write(f"error: {error.message(lang)}\n")
            history.pop()
            continue
        out.write("\n")
        history.append({"role": "assistant", "content": reply})
