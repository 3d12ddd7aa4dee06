"""Decide which weights train: full, freeze (the last or first N decoder layers) or the LoRA family.

`setup_finetuning(model, model_args, finetuning_args, is_trainable)` is called by `loader.load_model` after the
weights are loaded. LoRA covers rsLoRA, DoRA, PiSSA initialisation, QLoRA (a 4/8-bit base), extra fully
trained modules (`additional_target`) and continuing from saved adapters. Trainable weights are float32
(master weights for mixed precision) unless `pure_bf16`. Module names in the config are checked against the
model, and a name that matches nothing is a `ModelError` that lists the names that exist.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.load_errors import translated_errors
from engine.model.quantization import count_4bit_elements, is_quantized
from engine.paths import looks_like_local_path

logger = logging.getLogger(__name__)

# Output heads are never LoRA targets under `all`: adapting them rarely helps and they are large.
HEAD_NAMES = frozenset({"lm_head", "score", "classifier", "v_head", "embed_out", "output"})


def _split(names: str | None) -> list[str]:
    return [name.strip() for name in (names or "").split(",") if name.strip()]


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; a 4-bit weight counts every value it packs, tied weights once."""
    trainable = total = 0
    for param in model.parameters():
        count = param.numel()
        if count == 0 and hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3 keeps only a shard here
            count = param.ds_numel
        if param.__class__.__name__ == "Params4bit":
            count = count_4bit_elements(param)
        total += count
        if param.requires_grad:
            trainable += count
    return trainable, total


def _cast_trainable(model: Any, finetuning_args: FinetuningArguments) -> None:
    """Trainable weights in float32 (the optimizer's master copy), or bfloat16 with `pure_bf16`."""
    import torch

    dtype = torch.bfloat16 if finetuning_args.pure_bf16 else torch.float32
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def _module_name_parts(model: Any, prefix: str = "") -> set[str]:
    """Every dotted component of the module names under `prefix` (e.g. self_attn, q_proj, mlp, norm)."""
    parts: set[str] = set()
    for name, _ in model.named_modules():
        if not name or (prefix and not name.startswith(prefix)):
            continue
        parts.update(part for part in name[len(prefix):].split(".") if part and not part.isdigit())
    return parts


def _check_names(names: list[str], available: set[str], key: str) -> None:
    for name in names:
        if name not in available:
            raise ModelError(key, name=name, available=", ".join(sorted(available)))


def _embedding_module_names(model: Any) -> list[str]:
    """The last name component of the input embeddings and the output head (trained when the vocab grows)."""
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    return sorted({name.split(".")[-1] for name, module in model.named_modules()
                   if name and any(module is w for w in wanted if w is not None)})


# ---------------------------------------------------------------- full / freeze


def _setup_full(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> Any:
    """Train every weight."""
    if is_quantized(model):
        raise ModelError("quantization_needs_lora", method="full")
    model.requires_grad_(True)
    _cast_trainable(model, finetuning_args)
    return model


def find_decoder_layers(model: Any) -> tuple[str, int]:
    """(module path, count) of the decoder layer list, e.g. ("model.layers", 32)."""
    import torch

    config = getattr(model.config, "text_config", None) or model.config
    count = getattr(config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, count
    raise ModelError("freeze_no_layers", model_type=str(getattr(model.config, "model_type", type(model).__name__)))


def _setup_freeze(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> Any:
    """Train the last `freeze_trainable_layers` layers (negative: the first N), limited to the named modules."""
    if is_quantized(model):
        raise ModelError("quantization_needs_lora", method="freeze")
    prefix, count = find_decoder_layers(model)
    n = finetuning_args.freeze_trainable_layers
    layer_ids = set(range(max(count - n, 0), count)) if n >= 0 else set(range(min(-n, count)))

    modules = _split(finetuning_args.freeze_trainable_modules)
    if modules == ["all"]:
        modules = []
    _check_names(modules, _module_name_parts(model, f"{prefix}.0."), "freeze_module_not_found")
    extras = _split(finetuning_args.freeze_extra_modules)
    outside = {part for name, _ in model.named_modules() if name and not name.startswith(prefix)
               for part in name.split(".")}
    _check_names(extras, outside, "freeze_extra_not_found")
    if model_args.resize_vocab:
        extras += _embedding_module_names(model)

    def wanted(name: str) -> bool:
        parts = name.split(".")[:-1]  # the module path, without the parameter's own name
        if name.startswith(prefix + "."):
            rest = name[len(prefix) + 1:].split(".")
            return int(rest[0]) in layer_ids and (not modules or any(m in rest[1:-1] for m in modules))
        return any(extra in parts for extra in extras)

    model.requires_grad_(False)
    # Tied weights appear under several names; any trainable name makes the shared tensor trainable.
    for name, param in model.named_parameters(remove_duplicate=False):
        if wanted(name):
            param.requires_grad_(True)
    _cast_trainable(model, finetuning_args)
    logger.info("Freeze: training layers %s of %d%s.", sorted(layer_ids), count,
                f" (modules {', '.join(modules)})" if modules else "")
    return model


# ---------------------------------------------------------------- LoRA


def find_linear_modules(model: Any) -> dict[str, list[str]]:
    """Short name → full names of the linear layers LoRA can adapt (output heads and LoRA's own excluded)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        short = name.split(".")[-1]
        if not isinstance(module, torch.nn.Linear) or module is head or short in HEAD_NAMES or "lora_" in name:
            continue
        found.setdefault(short, []).append(name)
    return found


def lora_targets(model: Any, lora_target: str) -> list[str]:
    """The `target_modules` for peft: every linear layer for `all`, else the checked comma-separated names."""
    linear = find_linear_modules(model)
    names = _split(lora_target)
    if not names or names == ["all"]:
        return sorted(linear)
    full_names = [full for fulls in linear.values() for full in fulls]
    for name in names:
        if not any(full == name or full.endswith("." + name) for full in full_names):
            raise ModelError("lora_target_not_found", name=name, available=", ".join(sorted(linear)))
    return names


def lora_kwargs(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> dict[str, Any]:
    """The `LoraConfig` arguments for a new adapter."""
    ft = finetuning_args
    modules_to_save = _split(ft.additional_target)
    _check_names(modules_to_save, _module_name_parts(model), "additional_target_not_found")
    if model_args.resize_vocab:  # the new token rows start as the mean: train them fully
        modules_to_save += [name for name in _embedding_module_names(model) if name not in modules_to_save]
    # Tied input/output embeddings must stay one tensor when both are trained fully.
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    embeddings = set(_embedding_module_names(model))
    init: bool | str = True
    if ft.pissa_init:
        init = "pissa" if ft.pissa_iter == -1 else f"pissa_niter_{ft.pissa_iter}"
    return {
        "r": ft.lora_rank,
        "lora_alpha": ft.lora_alpha or 2 * ft.lora_rank,
        "lora_dropout": ft.lora_dropout,
        "target_modules": lora_targets(model, ft.lora_target),
        "modules_to_save": modules_to_save or None,
        "use_rslora": ft.use_rslora,
        "use_dora": ft.use_dora,
        "init_lora_weights": init,
        "ensure_weight_tying": tied and bool(embeddings & set(modules_to_save)),
    }


def _adapter_location(name: str) -> str:
    """A local adapter folder (checked) or a Hub id."""
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "adapter_config.json")):
            raise ModelError("adapter_config_missing", path=name)
        return expanded
    if os.path.exists(expanded) or looks_like_local_path(name):
        raise ModelError("adapter_not_found", path=name)
    return name


def _load_adapter(model: Any, location: str, model_args: ModelArguments, is_trainable: bool) -> Any:
    """`PeftModel.from_pretrained` with errors that name the adapter and the base model."""
    from peft import PeftModel

    folder = location if os.path.isdir(location) else None
    try:
        with translated_errors(location, model_args, folder):
            return PeftModel.from_pretrained(model, location, is_trainable=is_trainable)
    except ModelError as exc:
        cause = str(exc.__cause__ or "")
        if "size mismatch" in cause or "not found in the base model" in cause:
            lines = [line.strip() for line in cause.splitlines() if line.strip()]
            detail = next((line for line in lines if "size mismatch" in line or "not found" in line), lines[0])
            raise ModelError("adapter_mismatch", path=location, name=model_args.model_name_or_path,
                             error=detail.rstrip(".")) from exc.__cause__
        raise


def load_adapters(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                  is_trainable: bool) -> tuple[Any, bool]:
    """Load `adapter_name_or_path` (comma-separated, applied in order); returns (model, last adapter kept).

    All but the last are merged into the weights. The last one stays an adapter (trained further when
    `is_trainable`) unless `create_new_adapter`, which merges it too so a fresh adapter can be added. A
    quantized base cannot take merged weights, so it accepts exactly one adapter.
    """
    locations = [_adapter_location(name) for name in _split(model_args.adapter_name_or_path)]
    if not locations:
        return model, False
    quantized = is_quantized(model)
    if quantized and len(locations) > 1:
        raise ModelError("quantized_multiple_adapters", count=len(locations))
    new_adapter = is_trainable and finetuning_args.create_new_adapter
    if quantized and new_adapter:
        raise ModelError("quantized_new_adapter")
    to_merge, last = (locations, None) if new_adapter else (locations[:-1], locations[-1])
    for location in to_merge:
        model = _load_adapter(model, location, model_args, is_trainable=False).merge_and_unload()
    if last is not None:
        model = _load_adapter(model, last, model_args, is_trainable=is_trainable)
    logger.info("Loaded adapters: %s%s.", ", ".join(locations), " (merged)" if last is None else "")
    return model, last is not None


def _setup_lora(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> Any:
    """Continue the loaded adapter, or add a new LoRA adapter (through Unsloth when `use_unsloth`)."""
    from peft import LoraConfig, TaskType, get_peft_model

    if finetuning_args.pissa_init and is_quantized(model):
        raise ModelError("pissa_quantized")
    model, resumed = load_adapters(model, model_args, finetuning_args, is_trainable=True)
    if not resumed:
        kwargs = lora_kwargs(model, model_args, finetuning_args)
        if model_args.use_unsloth:
            from engine.model.boosters import unsloth_peft_model

            model = unsloth_peft_model(model, model_args, kwargs)
        else:
            task = TaskType.SEQ_CLS if finetuning_args.stage == "rm" else TaskType.CAUSAL_LM
            model = get_peft_model(model, LoraConfig(task_type=task, **kwargs))
    _cast_trainable(model, finetuning_args)
    return model


SETUPS: dict[str, Callable[[Any, ModelArguments, FinetuningArguments], Any]] = {
    "full": _setup_full,
    "freeze": _setup_freeze,
    "lora": _setup_lora,
}


def setup_finetuning(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                     is_trainable: bool) -> Any:
    """Make the weights of `finetuning_type` trainable (or, for inference, just load the adapters)."""
    method = finetuning_args.finetuning_type
    if model_args.adapter_name_or_path and method != "lora":
        raise ModelError("adapter_needs_lora", method=method)
    if method not in SETUPS:
        raise ModelError("bad_choice", key=Setting("finetuning_type"), value=method, choices=", ".join(SETUPS))
    if not is_trainable:
        return load_adapters(model, model_args, finetuning_args, is_trainable=False)[0]
    return SETUPS[method](model, model_args, finetuning_args)
