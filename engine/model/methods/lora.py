"""LoRA and its variants: rsLoRA, DoRA, PiSSA initialisation, QLoRA (a 4/8-bit base), LoRA+ (in the optimizer).

A run saves the adapter (adapter_config.json + adapter_model.safetensors); `additional_target` modules are
saved fully beside it. Training on top of saved adapters and loading them follow `peft_adapters`.
"""

from __future__ import annotations

from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError
from engine.model.boosters import unsloth_peft_model
from engine.model.methods.peft_adapters import modules_to_save, setup_adapter, task_type
from engine.model.methods.weights import embedding_module_names, linear_targets
from engine.model.quantization import is_quantized
from engine.multimodal.parts import frozen_paths


def check(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> None:
    """PiSSA factorises the base weights, which a quantized base does not hold in full precision."""
    if is_trainable and finetuning_args.pissa_init and model_args.quantization_bit is not None:
        raise ModelError("pissa_quantized")


def lora_kwargs(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> dict[str, Any]:
    """The `LoraConfig` arguments for a new adapter."""
    ft = finetuning_args
    to_save = modules_to_save(model, model_args, ft)
    # Tied input/output embeddings must stay one tensor when both are trained fully.
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    embeddings = set(embedding_module_names(model))
    init: bool | str = True
    if ft.pissa_init:
        init = "pissa" if ft.pissa_iter == -1 else f"pissa_niter_{ft.pissa_iter}"
    return {
        "r": ft.lora_rank,
        "lora_alpha": ft.lora_alpha or 2 * ft.lora_rank,
        "lora_dropout": ft.lora_dropout,
        "target_modules": linear_targets(model, ft.lora_target, "lora_target_not_found",
                                         ft.freeze_trainable_layers if ft.use_llama_pro else None,
                                         frozen=frozen_paths(model, ft)),
        "modules_to_save": to_save or None,
        "use_rslora": ft.use_rslora,
        "use_dora": ft.use_dora,
        "init_lora_weights": init,
        "ensure_weight_tying": tied and bool(embeddings & set(to_save)),
    }


def _add_lora(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> Any:
    """A fresh LoRA adapter (through Unsloth when `use_unsloth`, whose fused kernels need its own wrapper)."""
    from peft import LoraConfig, get_peft_model

    kwargs = lora_kwargs(model, model_args, finetuning_args)
    if model_args.use_unsloth:
        return unsloth_peft_model(model, model_args, kwargs)
    return get_peft_model(model, LoraConfig(task_type=task_type(finetuning_args), **kwargs))


def setup(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> Any:
    """Continue the loaded adapter or add a new one; for inference, load the saved adapters."""
    if is_trainable and finetuning_args.pissa_init and is_quantized(model):
        raise ModelError("pissa_quantized")
    return setup_adapter(model, model_args, finetuning_args, is_trainable, "LORA",
                         lambda base: _add_lora(base, model_args, finetuning_args))
