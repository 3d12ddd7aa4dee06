"""The registered chat formats, one module per model family; importing this package registers them all."""

from engine.templates.families import (  # noqa: F401  (imported for their register_template calls)
    chinese,
    community,
    generic,
    google,
    llama,
    microsoft,
    mistral,
    qwen,
)
