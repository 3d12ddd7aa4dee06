"""Freeze tuning: train the last (or first) N decoder layers, or with LLaMA Pro the blocks `expand-model` added.

A run saves the whole model. `freeze_trainable_modules` limits training to some modules of those layers (e.g.
mlp), `freeze_extra_modules` adds modules outside the layers (e.g. embed_tokens, norm).
"""

from __future__ import annotations

import logging
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.methods.weights import (
    cast_trainable,
    check_names,
    embedding_module_names,
    find_decoder_layers,
    llama_pro_layer_ids,
    module_name_parts,
    split_names,
)

logger = logging.getLogger(__name__)


def check(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> None:
    """LLaMA Pro names the added blocks by their count: it must be positive."""
    if is_trainable and finetuning_args.use_llama_pro and finetuning_args.freeze_trainable_layers <= 0:
        raise ModelError("llama_pro_trainable_layers", value=finetuning_args.freeze_trainable_layers,
                         key=Setting("freeze_trainable_layers"))


def trainable_layer_ids(count: int, finetuning_args: FinetuningArguments) -> list[int]:
    """The decoder layers that train: LLaMA Pro's added blocks, the last N, or (N negative) the first -N."""
    n = finetuning_args.freeze_trainable_layers
    if finetuning_args.use_llama_pro:
        return llama_pro_layer_ids(count, n)
    return list(range(max(count - n, 0), count)) if n >= 0 else list(range(min(-n, count)))


def setup(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> Any:
    """Make the chosen layers (limited to the named modules) and the extra modules trainable."""
    if not is_trainable:
        return model
    prefix, count = find_decoder_layers(model)
    layer_ids = set(trainable_layer_ids(count, finetuning_args))

    modules = split_names(finetuning_args.freeze_trainable_modules)
    if modules == ["all"]:
        modules = []
    check_names(modules, module_name_parts(model, f"{prefix}.0."), "freeze_module_not_found")
    extras = split_names(finetuning_args.freeze_extra_modules)
    outside = {part for name, _ in model.named_modules() if name and not name.startswith(prefix)
               for part in name.split(".")}
    check_names(extras, outside, "freeze_extra_not_found")
    if model_args.resize_vocab:
        extras += embedding_module_names(model)

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
    cast_trainable(model, finetuning_args.pure_bf16)
    logger.info("Freeze%s: training layers %s of %d%s.", " (LLaMA Pro)" if finetuning_args.use_llama_pro else "",
                sorted(layer_ids), count, f" (modules {', '.join(modules)})" if modules else "")
    return model
