"""Well-known models for the studio's picker: display name → hub ids, chat template, family and recommended settings.

Importing this package registers every model; it is torch-free. The demo comes first, then one module per vendor,
imported below in the order the picker lists their families (the most used first); `list_models()` keeps each
family together and `model_label()` names it, so typing a family into the picker finds all of it.
"""

from engine.model.families.registry import (
    CUSTOM,
    DEMO,
    DEMO_AUDIO,
    DEMO_AUDIO_PATH,
    DEMO_PATH,
    DEMO_VISION,
    DEMO_VISION_PATH,
    FAMILIES,
    HUBS,
    MODELS,
    ModelInfo,
    find_model,
    get_model,
    list_models,
    model_label,
    model_path,
    register_family,
    register_model,
    template_for,
)

# isort: off
from engine.model.families import qwen  # noqa: F401,E402  (each import registers its vendor's families and models)
from engine.model.families import meta  # noqa: F401,E402
from engine.model.families import deepseek  # noqa: F401,E402
from engine.model.families import google  # noqa: F401,E402
from engine.model.families import openai  # noqa: F401,E402
from engine.model.families import mistral  # noqa: F401,E402
from engine.model.families import zhipu  # noqa: F401,E402
from engine.model.families import moonshot  # noqa: F401,E402
from engine.model.families import minimax  # noqa: F401,E402
from engine.model.families import microsoft  # noqa: F401,E402
from engine.model.families import huggingface  # noqa: F401,E402
from engine.model.families import ibm  # noqa: F401,E402
from engine.model.families import allenai  # noqa: F401,E402
from engine.model.families import liquid  # noqa: F401,E402
from engine.model.families import tencent  # noqa: F401,E402
from engine.model.families import baidu  # noqa: F401,E402
from engine.model.families import bytedance  # noqa: F401,E402
from engine.model.families import chinese  # noqa: F401,E402
from engine.model.families import community  # noqa: F401,E402
# isort: on

__all__ = [
    "CUSTOM",
    "DEMO",
    "DEMO_AUDIO",
    "DEMO_AUDIO_PATH",
    "DEMO_PATH",
    "DEMO_VISION",
    "DEMO_VISION_PATH",
    "FAMILIES",
    "HUBS",
    "MODELS",
    "ModelInfo",
    "find_model",
    "get_model",
    "list_models",
    "model_label",
    "model_path",
    "register_family",
    "register_model",
    "template_for",
]
