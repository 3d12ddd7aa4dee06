"""The composite widgets that stand for several config fields, each mapped both ways (widget → config → widget).

Every other widget's key is its config field's name and needs no mapping. These functions are pure: they read and
return plain values and dicts, so the tabs' handlers and the tests call them without Gradio.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.model.families import CUSTOM, HUBS, MODELS, model_path
from engine.model.methods import adapter_methods
from engine.paths import resource_dir
from studio.capabilities import device_count
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


# Strategy over several devices. `auto` and `ddp` write the same config (no sharding: torchrun runs DDP); the
# config side reads back as `auto`. `fsdp2` is transformers' FSDP, which our engine runs as version 2.
STRATEGIES = ("auto", "ddp", "zero2", "zero3", "fsdp2")
FSDP_FULL_SHARD = "full_shard auto_wrap"
# (ZeRO stage, optimizer offload, parameter offload) → the shipped DeepSpeed file (`_offload`: all that apply).
DEEPSPEED_FILES = {
    (2, False, False): "ds_z2_config.json",
    (2, True, False): "ds_z2_offload_config.json",
    (3, False, False): "ds_z3_config.json",
    (3, True, True): "ds_z3_offload_config.json",
    (3, True, False): "ds_z3_offload_optimizer_config.json",
    (3, False, True): "ds_z3_offload_param_config.json",
}


def deepspeed_settings(stage: int, offload_optimizer: bool, offload_params: bool) -> dict[str, Any]:
    """The DeepSpeed JSON for a ZeRO stage and offloads, as shipped in examples/deepspeed (batch sizes, clipping and
    precision `auto`: the Trainer fills them in). Parameter offload exists only in ZeRO-3."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": False, "contiguous_gradients": True}
    if stage == 2:
        zero.update({"allgather_partitions": True, "allgather_bucket_size": 5e8, "reduce_scatter": True,
                     "reduce_bucket_size": 5e8})
    else:
        zero.update({"sub_group_size": 1e9, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto",
                     "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": 1e9,
                     "stage3_max_reuse_distance": 1e9, "stage3_gather_16bit_weights_on_model_save": True})
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if offload_params and stage == 3:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto", "zero_allow_untested_optimizer": True,
        "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                 "hysteresis": 2, "min_loss_scale": 1},
        "bf16": {"enabled": "auto"},
        "zero_optimization": zero,
    }


def strategy_to_config(strategy: str, offload_optimizer: bool = False, offload_params: bool = False
                       ) -> dict[str, Any]:
    """Strategy + offload boxes → `deepspeed` (a shipped file for the ZeRO stages) and `fsdp` (FSDP2: full shard).

    Optimizer offload applies to ZeRO; parameter offload to ZeRO-3 and FSDP2 (FSDP's `offload`: parameters and
    gradients in CPU memory); other strategies ignore them.
    """
    _check_choice("strategy", strategy, STRATEGIES)
    config: dict[str, Any] = {"deepspeed": None, "fsdp": None}
    if strategy in ("zero2", "zero3"):
        stage = int(strategy[-1])
        name = DEEPSPEED_FILES[(stage, bool(offload_optimizer), bool(offload_params) and stage == 3)]
        config["deepspeed"] = str(resource_dir("examples") / "deepspeed" / name)
    elif strategy == "fsdp2":
        config["fsdp"] = FSDP_FULL_SHARD + (" offload" if offload_params else "")
    return config


def strategy_from_config(config: Mapping[str, Any]) -> tuple[str, bool, bool]:
    """Config → (strategy, optimizer offload, parameter offload). A shipped DeepSpeed file reads as its stage and
    offloads; another DeepSpeed file as its `zero_optimization` says when it can be read (else ZeRO-2, no offload);
    any `fsdp` setting as FSDP2 (with `offload`: parameter offload); nothing as `auto`."""
    path = config.get("deepspeed")
    if path:
        for (stage, optimizer, params), name in DEEPSPEED_FILES.items():
            if Path(str(path)).name == name:
                return f"zero{stage}", optimizer, params
        return _deepspeed_file_strategy(Path(str(path)))
    if config.get("fsdp") not in (None, "", False):
        return "fsdp2", False, "offload" in str(config["fsdp"]).split()
    return "auto", False, False


def _deepspeed_file_strategy(path: Path) -> tuple[str, bool, bool]:
    try:
        zero = json.loads(path.read_text(encoding="utf-8")).get("zero_optimization") or {}
    except (OSError, ValueError, AttributeError):
        return "zero2", False, False
    stage = 3 if zero.get("stage") == 3 else 2
    return f"zero{stage}", "offload_optimizer" in zero, stage == 3 and "offload_param" in zero


def launch_env(form: Mapping[str, Any], gpu_count: int | None = None) -> dict[str, str]:
    """The environment a training job starts with for the chosen devices: several CPU processes (a machine without
    GPUs) or several chosen GPUs → `FORCE_TORCHRUN=1` and `NPROC_PER_NODE`; {} for one process or automatic.

    `gpu_count` is this machine's GPU count (default: as `studio.capabilities` finds it). CUDA_VISIBLE_DEVICES is
    the launcher's to set from `form["devices"]`.
    """
    if gpu_count is None:
        gpu_count = device_count()
    if gpu_count:
        count = len([d for d in form.get("devices") or [] if str(d).strip()])
    else:
        count = int(form.get("cpu_processes") or 1)
    return {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": str(count)} if count > 1 else {}
