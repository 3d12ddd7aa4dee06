"""`studio api` and `studio chat`: read the config, load the backend, serve it or chat with it."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from engine.config import RunConfig, load_config, parse_overrides, read_yaml
from engine.validation import validate_config

logger = logging.getLogger(__name__)


def _load(config_path: str | None, overrides: list[str]) -> tuple[RunConfig, set[str]]:
    """The validated inference config and the keys the file and the command line set."""
    from engine.inference.engine import explicit_keys

    config = validate_config(load_config(config_path, overrides), "infer")
    raw = read_yaml(config_path) if config_path is not None else {}
    return config, explicit_keys({**raw, **parse_overrides(overrides)})


def run_api(config_path: str | None, overrides: list[str]) -> int:
    """Load the model and serve it until interrupted; stdout carries only the ready line."""
    from engine.inference.api import bind_socket, serve, server_address
    from engine.inference.engine import load_backend

    config, explicit = _load(config_path, overrides)
    inference = config.inference
    host, port, key = server_address(inference.api_host, inference.api_port, inference.api_key)
    if port:  # a busy port is reported before minutes of model loading, not after
        bind_socket(host, port).close()
    ready_stream = sys.stdout
    # Libraries print to stdout at times; the studio reads stdout for the ready line only.
    with contextlib.redirect_stdout(sys.stderr):
        backend = load_backend(config, explicit)
        backend.model_id = inference.api_model_name or os.environ.get("API_MODEL_NAME") or backend.model_id
        try:
            serve(backend, host, port, key, ready_stream=ready_stream)
        finally:
            backend.close()
    return 0


def run_chat(config_path: str | None, overrides: list[str]) -> int:
    """Load the model and chat in the terminal."""
    from engine.inference.chat import run_chat as chat_loop
    from engine.inference.engine import load_backend

    config, explicit = _load(config_path, overrides)
    with contextlib.redirect_stdout(sys.stderr):
        backend = load_backend(config, explicit)
    try:
        return chat_loop(backend)
    finally:
        backend.close()

