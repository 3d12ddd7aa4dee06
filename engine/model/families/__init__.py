"""Well-known models for the studio's dropdown: display name → hub ids, chat template and recommended settings.

Importing this package registers every model; it is torch-free. The demo comes first, then one module per vendor,
imported below in the order the dropdown shows them.
"""

from engine.model.families.registry import (
    CUSTOM,
    DEMO,
    DEMO_PATH,
    HUBS,
    MODELS,
    ModelInfo,
    find_model,
    get_model,
    list_models,
    model_path,
    register_model,
    template_for,
)

# isort: off
from engine.model.families import qwen  # noqa: F401,E402  (each import registers its vendor's models)
from engine.model.families import meta  # noqa: F401,E402
from engine.model.families import chinese  # noqa: F401,E402
from engine.model.families import google  # noqa: F401,E402
from engine.model.families import mistral  # noqa: F401,E402
from engine.model.families import microsoft  # noqa: F401,E402
from engine.model.families import community  # noqa: F401,E402
# isort: on

__all__ = [
    "CUSTOM",
    "DEMO",
    "DEMO_PATH",
    "HUBS",
    "MODELS",
    "ModelInfo",
    "find_model",
    "get_model",
    "list_models",
    "model_path",
    "register_model",
    "template_for",
]
