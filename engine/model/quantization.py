"""Quantized loading with bitsandbytes (4-bit NF4/FP4 and 8-bit), the base of QLoRA.

Only bitsandbytes quantizes on the fly. Models that were saved already quantized (GPTQ, AWQ, …) carry a
`quantization_config` in their config.json and load as they are, when their library is installed.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting

BNB_METHODS = ("bnb", "bitsandbytes")


def local_rank() -> int:
    """This process's GPU index under torchrun/accelerate (0 for a single process)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_quantized(model: Any) -> bool:
    """Whether the model's weights are quantized (loaded in 4/8-bit, or saved quantized)."""
    return bool(
        getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(model, "is_quantized", False)
        or getattr(getattr(model, "config", None), "quantization_config", None)
    )


def bnb_compute_dtype(compute_dtype: Any) -> Any:
    """The dtype bitsandbytes computes in: float32 on CPU (its CPU kernels are checked only there), else `compute_dtype`."""
    import torch

    if not torch.cuda.is_available() or compute_dtype is None:
        return torch.float32
    return compute_dtype


def build_quantization_config(model_args: ModelArguments, config: Any, compute_dtype: Any) -> Any | None:
    """A transformers `BitsAndBytesConfig` for `quantization_bit`, or None when the model is loaded unquantized.

    Raises ModelError when the method is not bitsandbytes, bitsandbytes is missing, or the model is already
    quantized (a second quantization on top of the first is not possible).
    """
    if model_args.quantization_bit is None:
        return None
    saved = getattr(config, "quantization_config", None)
    if saved:
        method = saved.get("quant_method", "unknown") if isinstance(saved, dict) else getattr(saved, "quant_method", "")
        raise ModelError("model_already_quantized", name=model_args.model_name_or_path, method=str(method))
    if model_args.quantization_method not in BNB_METHODS:
        raise ModelError("quantization_method_unsupported", method=model_args.quantization_method)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("bitsandbytes_missing")

    from transformers import BitsAndBytesConfig

    dtype = bnb_compute_dtype(compute_dtype)
    if model_args.quantization_bit == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if model_args.quantization_bit == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_type=model_args.quantization_type,
            bnb_4bit_use_double_quant=model_args.double_quantization,
            bnb_4bit_quant_storage=dtype,  # lets FSDP/DeepSpeed shard the packed weights like the others
        )
    raise ModelError("bad_choice", key=Setting("quantization_bit"), value=model_args.quantization_bit, choices="4, 8")


def quantization_device_map(model_args: ModelArguments) -> Any:
    """Where a quantized model is placed: bitsandbytes quantizes while loading, so it must know the device up front.

    `quantization_device_map: auto` spreads the layers over all GPUs (inference only); otherwise each process
    takes its local rank's GPU, or the CPU when there is none.
    """
    import torch

    if model_args.quantization_device_map == "auto":
        return "auto"
    if torch.cuda.is_available():
        return {"": local_rank()}
    return "cpu"


def count_4bit_elements(param: Any) -> int:
    """The number of weights a bitsandbytes `Params4bit` holds: two 4-bit values per byte of its storage."""
    storage = getattr(param, "quant_storage", None)
    itemsize = storage.itemsize if storage is not None else param.element_size()
    return param.numel() * itemsize * 2
