"""Inference: the chat backends (transformers, vLLM), the OpenAI-compatible API server and the terminal chat.

Importing this package loads neither torch nor vLLM nor FastAPI; they are imported when a backend loads or a
server starts. `load_backend(config)` gives a `ChatBackend`; `engine.inference.api.serve` serves it over HTTP.
"""

from engine.inference.backend import ChatBackend, Completion, InferenceError, Sampling
from engine.inference.engine import (
    HFBackend,
    VLLMBackend,
    explicit_keys,
    load_backend,
    resolve_inference_config,
)

READY_PREFIX = "API server ready on "
"""The start of the one line `studio api` prints on stdout once it accepts connections (then the URL)."""

__all__ = [
    "READY_PREFIX",
    "ChatBackend",
    "Completion",
    "HFBackend",
    "InferenceError",
    "Sampling",
    "VLLMBackend",
    "explicit_keys",
    "load_backend",
    "resolve_inference_config",
]
