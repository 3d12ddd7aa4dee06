"""Speed-ups that need extra packages or a GPU: the attention implementation, Unsloth and Liger kernels.

Every package is imported only when its feature is asked for, and a missing package or a missing GPU is a
`ModelError` that says what to install or what to turn off, never an ImportError from deep inside a library.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError

logger = logging.getLogger(__name__)

# `flash_attn` setting → transformers' `attn_implementation`; None lets transformers choose (sdpa, else eager).
ATTN_IMPLEMENTATIONS: dict[str, str | None] = {
    "auto": None,
    "disabled": "eager",
    "sdpa": "sdpa",
    "fa2": "flash_attention_2",
    "fa3": "flash_attention_3",
}
# The import name of the package each FlashAttention version ships, and the extra that installs it.
_FLASH_PACKAGES = {"fa2": ("flash_attn", "flash-attn"), "fa3": ("flash_attn_interface", "flash-attn")}


def has_package(name: str) -> bool:
    """Whether `name` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def has_cuda() -> bool:
    """Whether a CUDA GPU is usable by this process."""
    import torch

    return torch.cuda.is_available()


def resolve_attn_implementation(flash_attn: str) -> str | None:
    """The `attn_implementation` to pass to transformers for our `flash_attn` setting.

    FlashAttention is checked here, before loading: transformers would otherwise try to fetch a kernel from the
    Hub, which fails offline with a message that does not name the setting to change.
    """
    if flash_attn not in ATTN_IMPLEMENTATIONS:
        raise ModelError("bad_choice", key="flash_attn", value=flash_attn, choices=", ".join(ATTN_IMPLEMENTATIONS))
    if flash_attn in _FLASH_PACKAGES:
        package, extra = _FLASH_PACKAGES[flash_attn]
        if not has_package(package):
            raise ModelError("attention_needs_package", impl=flash_attn, package=package, extra=extra)
        if not has_cuda():
            raise ModelError("attention_needs_gpu", impl=flash_attn)
    return ATTN_IMPLEMENTATIONS[flash_attn]


def liger_kernel_kwargs(finetuning_args: FinetuningArguments, is_trainable: bool) -> dict[str, Any]:
    """Which Liger kernels to switch on.

    The fused linear + cross-entropy kernel never materialises the logits, so it is used only where the trainer
    needs just the loss: pre-training and SFT without token accuracy (DPO/KTO/RM/GRPO read the logits).
    """
    needs_logits = not is_trainable or finetuning_args.stage not in ("pt", "sft") or finetuning_args.compute_accuracy
    return {
        "rope": True,
        "rms_norm": True,
        "swiglu": True,
        "cross_entropy": False,
        "fused_linear_cross_entropy": not needs_logits,
    }


def apply_liger_kernel(config: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                       is_trainable: bool) -> None:
    """Patch the model class of `config.model_type` with Liger's Triton kernels (before the model is built).

    Liger patches the transformers classes of the whole process, so every later model of that type uses them.
    """
    if not model_args.enable_liger_kernel:
        return
    if not has_package("liger_kernel"):
        raise ModelError("liger_missing")
    if not has_cuda():
        raise ModelError("liger_needs_gpu")
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    model_type = getattr(config, "model_type", None)
    apply = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type)
    if apply is None:
        raise ModelError("liger_unsupported_model", model_type=str(model_type),
                         supported=", ".join(sorted(MODEL_TYPE_TO_APPLY_LIGER_FN)))
    wanted = liger_kernel_kwargs(finetuning_args, is_trainable)
    accepted = inspect.signature(apply).parameters  # the switches differ between model families
    apply(**{key: value for key, value in wanted.items() if key in accepted})
    logger.info("Liger kernels applied to %s: %s", model_type, wanted)


def check_unsloth(finetuning_args: FinetuningArguments) -> None:
    """Raise unless Unsloth can run here: the package, a CUDA GPU and LoRA (Unsloth's path trains adapters)."""
    if not has_package("unsloth"):
        raise ModelError("unsloth_missing")
    if not has_cuda():
        raise ModelError("unsloth_needs_gpu")
    if finetuning_args.finetuning_type != "lora":
        raise ModelError("unsloth_needs_lora", method=finetuning_args.finetuning_type)


def load_unsloth_model(path: str, config: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                       compute_dtype: Any, max_seq_length: int | None = None) -> Any:
    """The base model through Unsloth's `FastLanguageModel.from_pretrained` (its tokenizer is discarded: ours wins).

    `max_seq_length` defaults to the model's context length; Unsloth scales RoPE itself when it is longer.
    """
    check_unsloth(finetuning_args)
    from unsloth import FastLanguageModel

    from engine.model.quantization import local_rank

    model, _ = FastLanguageModel.from_pretrained(
        model_name=path,
        max_seq_length=max_seq_length or getattr(config, "max_position_embeddings", 4096),
        dtype=compute_dtype,
        load_in_4bit=model_args.quantization_bit == 4,
        load_in_8bit=model_args.quantization_bit == 8,
        token=model_args.hf_hub_token,
        revision=model_args.model_revision,
        device_map={"": local_rank()},
        trust_remote_code=model_args.trust_remote_code,
        use_gradient_checkpointing="unsloth" if model_args.use_unsloth_gc else True,
    )
    return model


def unsloth_peft_model(model: Any, model_args: ModelArguments, lora_kwargs: dict[str, Any]) -> Any:
    """Add LoRA adapters through Unsloth (its fused LoRA kernels need its own wrapper, not `get_peft_model`)."""
    from unsloth import FastLanguageModel

    kwargs = {
        "r": lora_kwargs["r"],
        "target_modules": lora_kwargs["target_modules"],
        "lora_alpha": lora_kwargs["lora_alpha"],
        "lora_dropout": lora_kwargs["lora_dropout"],
        "use_rslora": lora_kwargs["use_rslora"],
        "modules_to_save": lora_kwargs.get("modules_to_save"),
        "use_gradient_checkpointing": "unsloth" if model_args.use_unsloth_gc else True,
    }
    return FastLanguageModel.get_peft_model(model, **kwargs)
