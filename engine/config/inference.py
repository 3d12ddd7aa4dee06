"""Settings of the OpenAI-compatible API server (`studio api`)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option


@dataclass
class InferenceArguments:
    """The API server's address, key and model id; unset ones come from API_HOST, API_PORT, API_KEY, API_MODEL_NAME."""

    api_host: str | None = option(None, "Address the API server binds to (else API_HOST, else 127.0.0.1).")
    api_port: int | None = option(None, "Port of the API server (else API_PORT, else 8000; 0 picks a free port).",
                                  min=0, max=65535)
    api_key: str | None = option(None, "Key clients must send as `Authorization: Bearer <key>` (else API_KEY; "
                                       "unset: no key needed).", secret=True)
    api_model_name: str | None = option(None, "Model id the API serves and clients send as `model` (else "
                                              "API_MODEL_NAME, else the run folder's or the model folder's name).")
