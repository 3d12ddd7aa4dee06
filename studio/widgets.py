"""The composite widgets that stand for several config fields, each mapped both ways (widget → config → widget).

Every other widget's key is its config field's name and needs no mapping. These functions are pure: they read and
return plain values and dicts, so the tabs' handlers and the tests call them without Gradio.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.model.families import CUSTOM, HUBS, MODELS, model_path
from engine.model.methods import adapter_methods
from studio.workspace import home

BOOSTERS = ("auto", "sdpa", "flashattn2", "unsloth", "liger_kernel")
COMPUTE_TYPES = ("bf16", "fp16", "fp32", "pure_bf16")
QUANTIZATION_BITS = ("none", "8", "4")
ADAPTER_METHODS = tuple(adapter_methods())  # methods whose runs are adapters loaded on the base model (PEFT)

# booster → the attention implementation it asks for (engine values of `flash_attn`).
_BOOSTER_ATTN = {"auto": "auto", "sdpa": "sdpa", "flashattn2": "fa2", "unsloth": "auto", "liger_kernel": "auto"}
_TRUE = ("true", "yes", "on", "1")


def _flag(config: Mapping[str, Any], key: str) -> bool:
    """A boolean config value, also when it came from YAML or the command line as text."""
    value = config.get(key)
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _check_choice(kind: str, value: str, choices: Iterable[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")


def booster_to_config(booster: str) -> dict[str, Any]:
    """Booster choice → `flash_attn`, `use_unsloth`, `enable_liger_kernel`."""
    _check_choice("booster", booster, BOOSTERS)
    return {
        "flash_attn": _BOOSTER_ATTN[booster],
        "use_unsloth": booster == "unsloth",
        "enable_liger_kernel": booster == "liger_kernel",
    }


def booster_from_config(config: Mapping[str, Any]) -> str:
    """Config → booster choice. Unsloth wins over Liger, which wins over the attention setting; an attention
    setting the dropdown does not offer (`disabled`, `fa3`) reads as `auto`."""
    if _flag(config, "use_unsloth"):
        return "unsloth"
    if _flag(config, "enable_liger_kernel"):
        return "liger_kernel"
    attn = config.get("flash_attn") or "auto"
    return {"fa2": "flashattn2", "sdpa": "sdpa"}.get(attn, "auto")


def compute_type_to_config(compute_type: str) -> dict[str, bool]:
    """Compute type → `bf16`, `fp16`, `pure_bf16` (fp32 turns all three off)."""
    _check_choice("compute type", compute_type, COMPUTE_TYPES)
    return {name: compute_type == name for name in ("bf16", "fp16", "pure_bf16")}


def compute_type_from_config(config: Mapping[str, Any]) -> str:
    """Config → compute type; pure_bf16 wins over bf16, which wins over fp16; none of them is fp32."""
    for name in ("pure_bf16", "bf16", "fp16"):
        if _flag(config, name):
            return name
    return "fp32"


def model_to_config(name: str, hub: str = "huggingface", custom_path: str | None = None) -> dict[str, str]:
    """Model dropdown + hub + path box → `model_name_or_path`.

    A registered name gives its id on that hub (`demo` for the demo); Custom gives the path box; any other name
    (typed into the dropdown) is taken as the path itself.
    """
    _check_choice("hub", hub, HUBS)
    if name == CUSTOM:
        return {"model_name_or_path": (custom_path or "").strip()}
    if name in MODELS:
        return {"model_name_or_path": model_path(name, hub)}
    return {"model_name_or_path": name.strip()}


def model_from_config(config: Mapping[str, Any], hub: str = "huggingface") -> tuple[str, str, str]:
    """Config → (model dropdown, hub, path box).

    A known hub id or `demo` selects its model, on `hub` when the id is that hub's (Qwen's ids are the same on
    both), else on the hub the id belongs to; anything else is Custom with the path.
    """
    path = str(config.get("model_name_or_path") or "").strip()
    wanted = path.rstrip("/").lower()  # hub ids are case-insensitive
    for candidate in (hub, *HUBS):
        for name in MODELS:
            if model_path(name, candidate).lower() == wanted:
                return name, candidate, ""
    return CUSTOM, hub, path


def quantization_to_config(bits: str | int | None) -> dict[str, int | None]:
    """Quantization choice (`none`, `8`, `4`) → `quantization_bit`."""
    choice = "none" if bits in (None, "") else str(bits)
    _check_choice("quantization", choice, QUANTIZATION_BITS)
    return {"quantization_bit": None if choice == "none" else int(choice)}


def quantization_from_config(config: Mapping[str, Any]) -> str:
    """Config → quantization choice; a value the dropdown does not offer reads as `none`."""
    value = config.get("quantization_bit")
    choice = "none" if value in (None, "", "none") else str(value)
    return choice if choice in QUANTIZATION_BITS else "none"


def runs_dir(model: str, method: str) -> Path:
    """saves/<model>/<method>: the folder of a model's runs with one method, named as `studio.runs` names it."""
    from studio.runs import run_folder  # pandas comes with it: only load it when runs are asked for

    return run_folder(model, method, "run").parent


def _resolve(path: str) -> Path:
    """A path as written in a config, made absolute; relative paths start at STUDIO_HOME, which holds saves/."""
    candidate = Path(path).expanduser()
    return (candidate if candidate.is_absolute() else home() / candidate).resolve()


def _run_name(path: str, model: str, method: str) -> str:
    """The run name when `path` is a run folder of this model and method, else the path unchanged."""
    resolved = _resolve(path)
    return resolved.name if resolved.parent == runs_dir(model, method).resolve() else path


def _run_path(run: str, model: str, method: str) -> str:
    """A run name → its folder; an entry that already is a path (custom folder) stays as it is."""
    if "/" in run or "\\" in run:
        return run
    from studio.runs import run_folder

    return str(run_folder(model, method, run))


def checkpoint_to_config(runs: str | Iterable[str] | None, model: str, method: str) -> dict[str, Any]:
    """Chosen earlier runs → what to start from.

    LoRA and OFT: the runs' adapters are loaded on the base model (`adapter_name_or_path`, comma-joined; None
    for none).
    Full and freeze: the one chosen run's weights become the model (`model_name_or_path`); with none chosen the
    model stays as the model widgets set it, so the key is left out.
    """
    chosen = [runs] if isinstance(runs, str) else list(runs or [])
    chosen = [run.strip() for run in chosen if run and run.strip()]
    paths = [_run_path(run, model, method) for run in chosen]
    if method in ADAPTER_METHODS:
        return {"adapter_name_or_path": ",".join(paths) or None}
    if len(paths) > 1:
        raise ValueError(f"{method} training continues from one run, not {len(paths)}: choose a single run")
    config: dict[str, Any] = {"adapter_name_or_path": None}
    if paths:
        config["model_name_or_path"] = paths[0]
    return config


def checkpoint_from_config(config: Mapping[str, Any], model: str, method: str) -> list[str]:
    """Config → the chosen runs: names for run folders of this model and method, full paths for other folders.

    For full and freeze, a `model_name_or_path` outside this model's runs is the base model, not a checkpoint.
    """
    if method in ADAPTER_METHODS:
        value = config.get("adapter_name_or_path") or ""
        entries = value if isinstance(value, list) else str(value).split(",")
        return [_run_name(entry.strip(), model, method) for entry in entries if entry.strip()]
    path = str(config.get("model_name_or_path") or "").strip()
    if not path or path == "demo":
        return []
    name = _run_name(path, model, method)
    return [name] if name != path else []
