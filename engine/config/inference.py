"""Settings of the OpenAI-compatible API server (`studio api`)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option


@dataclass
class InferenceArguments:
    """Where the API server listens and which key it asks for; unset values fall back to API_HOST, API_PORT, API_KEY."""

    api_host: str | None = option(None, "Address the API server binds to (else API_HOST, else 127.0.0.1).")
    api_port: int | None = option(None, "Port of the API server (else API_PORT, else 8000; 0 picks a free port).",
                                  min=0, max=65535)
    api_key: str | None = option(None, "Key clients must send as `Authorization: Bearer <key>` (else API_KEY; "
                                       "unset: no key needed).", secret=True)
