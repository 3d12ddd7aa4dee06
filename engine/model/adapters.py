"""Set up the finetuning method a run asks for (full, freeze, LoRA, OFT) through the `METHODS` registry.

`setup_finetuning(model, model_args, finetuning_args, is_trainable)` is called by `loader.load_model` after the
weights are loaded; `check_method_options` by the loader before any weight is read. Each method lives in its
own module under `engine.model.methods`; what they share (which methods take adapters or a quantized base) is
read from their registry records, so adding a method needs no change here.
"""

from __future__ import annotations

from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError
from engine.model.methods import adapter_methods, get_method, method_module, quantizable_methods
from engine.model.methods.weights import HEAD_NAMES, find_decoder_layers, find_linear_modules
from engine.model.quantization import count_4bit_elements, is_quantized

__all__ = ["HEAD_NAMES", "check_method_options", "count_parameters", "find_decoder_layers", "find_linear_modules",
           "setup_finetuning"]


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


def _refuse_quantized(name: str) -> None:
    raise ModelError("quantization_needs_adapter", method=name, methods=", ".join(quantizable_methods()))


def check_method_options(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> None:
    """Reject method options that cannot work, before any weights are read."""
    name = finetuning_args.finetuning_type
    method = get_method(name)
    if is_trainable and model_args.quantization_bit is not None and not method.quantized_base:
        _refuse_quantized(name)  # a quantized model can still be used for inference
    if model_args.adapter_name_or_path and method.peft_type is None:
        raise ModelError("adapter_needs_adapter_method", method=name, methods=", ".join(adapter_methods()))
    method_module(name).check(model_args, finetuning_args, is_trainable)


def setup_finetuning(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                     is_trainable: bool) -> Any:
    """Make the weights of `finetuning_type` trainable (or, for inference, load what its runs save)."""
    name = finetuning_args.finetuning_type
    method = get_method(name)
    check_method_options(model_args, finetuning_args, is_trainable)
    if is_trainable and not method.quantized_base and is_quantized(model):  # e.g. saved GPTQ weights
        _refuse_quantized(name)
    model = method_module(name).setup(model, model_args, finetuning_args, is_trainable)
    if is_trainable:
        from engine.multimodal.parts import freeze_parts

        freeze_parts(model, finetuning_args)  # a media model's frozen encoder / projector / language model
    return model
