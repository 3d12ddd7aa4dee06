"""The registry of well-known models: display name → hub ids, chat template, family and recommended settings.

Torch-free: the studio fills its model dropdown from here (family by family, each entry labelled with its family so
that typing a family name into the picker finds all of it), and the engine picks a template for a hub id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

CUSTOM = "Custom"
DEMO = "Demo (offline)"
DEMO_PATH = "demo"
DEMO_VISION = "Demo vision (offline)"
DEMO_VISION_PATH = "demo-vision"
DEMO_AUDIO = "Demo audio (offline)"
DEMO_AUDIO_PATH = "demo-audio"
HUBS = ("huggingface", "modelscope")
LABEL_SEPARATOR = " · "  # between the family and the model name in the picker: "Qwen · Qwen3-8B"

# Notes that many entries share, so that the same thing is said the same way.
BASE_NOTE = "Pre-trained base model, not tuned for chat."
REMOTE_CODE_NOTE = "Runs its own modelling code: set trust_remote_code."
MULTIMODAL_NOTE = "Also reads images; only its text side is trained here."
MULTI_GPU_NOTE = "Its 16-bit weights alone fill more than one GPU: plan on a multi-GPU server."


@dataclass(frozen=True)
class ModelInfo:
    """One well-known model: where to download it and how to chat with it."""

    name: str
    hf: str | None  # Hugging Face id; None for the locally built demo
    ms: str | None  # ModelScope id, when the model is mirrored there
    template: str
    family: str
    recommended: dict[str, Any] = field(default_factory=dict)  # config values the studio fills in on selection
    notes: str = ""
    params: float | None = None  # billions of parameters (all experts of a mixture); None for the demo
    local: str | None = None  # the reserved name of a model built on this computer (`demo`, `demo-vision`, …)


# What a hub model recommends unless its entry says otherwise: LoRA SFT as LLaMA-Factory's example configs run it
# on one GPU. Every model recommends the same keys (the demo too), so choosing a model replaces every value the
# previous one set instead of leaving the demo's 30 epochs behind.
HUB_RECOMMENDED: dict[str, Any] = {
    "finetuning_type": "lora",
    "learning_rate": 1e-4,
    "num_train_epochs": 3.0,
    "lora_rank": 8,
    "lora_target": "all",
    "cutoff_len": 2048,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 8,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "logging_steps": 10,
    "freeze_multi_modal_projector": True,  # LLaMA-Factory's default (the vision demo recommends training it)
}


MODELS: dict[str, ModelInfo] = {}
FAMILIES: dict[str, str] = {}  # family key → the name the picker shows, in picker order


def register_family(key: str, label: str) -> None:
    """Add a model family; the picker lists families in registration order. A second registration raises."""
    if key in FAMILIES:
        raise ValueError(f"model family {key!r} is already registered (as {FAMILIES[key]!r})")
    FAMILIES[key] = label


def moe_note(total: str, active: str) -> str:
    """The note of a mixture of experts: memory follows its total size, speed its active size."""
    return f"Mixture of experts: all {total} parameters must fit in memory, though only about {active} work per token."


def billions(size: str) -> float:
    """A size as model names write it (`7B`, `0.5B`, `135M`, `30B-A3B`: total, not active) → billions."""
    match = re.match(r"(\d+(?:\.\d+)?)([BM])", size.upper())
    if match is None:
        raise ValueError(f"not a model size: {size!r} (write it like 7B or 135M)")
    number = float(match.group(1))
    return number if match.group(2) == "B" else number / 1000


def register_model(name: str, *, hf: str | None, ms: str | None = None, template: str, family: str,
                   recommended: dict[str, Any] | None = None, notes: str = "",
                   params: float | str | None = None, local: str | None = None) -> ModelInfo:
    """Add a model to `MODELS`; a second registration of a name raises. Its `family` must be registered first.

    `template` is a chat template name as LLaMA-Factory spells it; the tests check that every entry's template is
    registered in `engine.templates` (not done here, so a model can be listed in the same change as its template).
    `params` is the total size in billions or as names write it (`7B`; every expert of a mixture counts); a hub
    model needs it, so the studio can say how much memory training takes. `recommended` entries override
    `HUB_RECOMMENDED` for hub models.
    """
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if name == CUSTOM:
        raise ValueError(f"{CUSTOM!r} is reserved for the studio's own-path choice")
    if family not in FAMILIES:
        raise ValueError(f"model {name!r}: unknown family {family!r}; register_family() it first "
                         f"(known: {', '.join(FAMILIES)})")
    if not re.fullmatch(r"[a-z][a-z0-9_.-]*", template):
        raise ValueError(f"model {name!r}: {template!r} is not a template name (write it like qwen3_nothink)")
    if hf is not None and params is None:
        raise ValueError(f"model {name!r}: give its size (params=7 or params='7B')")
    size = billions(params) if isinstance(params, str) else params
    values = dict(recommended or {}) if hf is None else {**HUB_RECOMMENDED, **(recommended or {})}
    info = ModelInfo(name=name, hf=hf, ms=ms, template=template, family=family, recommended=values, notes=notes,
                     params=size, local=local if hf is None else None)
    MODELS[name] = info
    return info


def list_models() -> list[str]:
    """Display names in picker order: the offline demo first, then family by family in the order the families were
    registered, each family's models in the order they were registered (newest generation first)."""
    rank = {family: index for index, family in enumerate(FAMILIES)}
    return sorted(MODELS, key=lambda name: rank[MODELS[name].family])  # stable: registration order within a family


def model_label(name: str) -> str:
    """What the picker shows for a registered model: its family, then its name ("Qwen · Qwen3-8B").

    The picker filters by what is typed anywhere in the label, so a family's name finds all of its models, also
    those whose own name does not say it (Moonlight under Kimi, QwQ under Qwen).
    """
    info = get_model(name)
    if info.hf is None:  # the demo is one of a kind
        return name
    return f"{FAMILIES[info.family]}{LABEL_SEPARATOR}{name}"


def get_model(name: str) -> ModelInfo:
    """The registered model called `name`."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; pick one of list_models() or {CUSTOM!r} with a path") from None


def model_path(name: str, hub: str = "huggingface") -> str:
    """A registered model's `model_name_or_path`: `demo`, its ModelScope id on that hub when known, else its HF id."""
    info = get_model(name)
    if info.hf is None:
        return info.local or DEMO_PATH
    if hub == "modelscope" and info.ms:
        return info.ms
    return info.hf


def find_model(name_or_path: str | None) -> ModelInfo | None:
    """The registered model a display name, `demo` or hub id (either hub, any case) stands for, else None."""
    if not name_or_path:
        return None
    if name_or_path in MODELS:
        return MODELS[name_or_path]
    wanted = name_or_path.strip().rstrip("/").lower()
    for info in MODELS.values():
        if info.hf is None and wanted == (info.local or DEMO_PATH):
            return info
    for info in MODELS.values():  # hub ids are case-insensitive on both hubs
        if wanted in ((info.hf or "").lower(), (info.ms or "").lower()):
            return info
    return None


def template_for(name_or_path: str | None) -> str | None:
    """The chat template of a registered model, by display name or hub id; None for anything else."""
    info = find_model(name_or_path)
    return info.template if info else None


register_family("demo", "Demo")
register_model(
    DEMO,
    hf=None,
    template="chatml",
    family="demo",
    # Measured on the demo model: with these values it learns the identity dataset.
    recommended={
        "finetuning_type": "lora",
        "dataset": "identity",
        "learning_rate": 5e-3,
        "num_train_epochs": 30,
        "lora_rank": 16,
        "lora_target": "all",
        "cutoff_len": 256,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.05,
        "logging_steps": 5,
        "freeze_multi_modal_projector": True,
    },
    notes="A tiny model built on this computer from the shipped demo data: no download, no GPU needed.",
    local=DEMO_PATH,
)
register_model(
    DEMO_VISION,
    hf=None,
    template="qwen2_vl",
    family="demo",
    # Measured on the vision demo: with these values LoRA learns mllm_colors (held-out accuracy from 0 to 1).
    recommended={
        "finetuning_type": "lora",
        "dataset": "mllm_colors",
        "learning_rate": 2e-3,
        "num_train_epochs": 15,
        "lora_rank": 8,
        "lora_target": "all",
        "cutoff_len": 512,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.05,
        "logging_steps": 5,
        "freeze_multi_modal_projector": False,
    },
    notes="A tiny Qwen2-VL built on this computer: reads images and short videos; no download, no GPU needed.",
    local=DEMO_VISION_PATH,
)
register_model(
    DEMO_AUDIO,
    hf=None,
    template="qwen2_audio",
    family="demo",
    # Measured on the audio demo: with these values LoRA learns mllm_tones (held-out accuracy from 0 to 1).
    recommended={
        "finetuning_type": "lora",
        "dataset": "mllm_tones",
        "learning_rate": 2e-3,
        "num_train_epochs": 8,
        "lora_rank": 8,
        "lora_target": "all",
        "cutoff_len": 256,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.05,
        "logging_steps": 5,
        "freeze_multi_modal_projector": True,
    },
    notes="A tiny Qwen2-Audio built on this computer: hears clips of up to one second; no download, no GPU needed.",
    local=DEMO_AUDIO_PATH,
)
