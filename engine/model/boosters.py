"""Speed-ups: the attention implementation, packed-sequence attention, selective logits, Unsloth and Liger kernels.

Every package is imported only when its feature is asked for, and a missing package or a missing GPU is a
`ModelError` that says what to install or what to turn off, never an ImportError from deep inside a library.

Packed and padding-free batches put several examples in one row with restarting `position_ids` and no attention
mask. transformers keeps them apart (a block-diagonal mask for sdpa/eager, varlen kernels for FlashAttention), but
sdpa then computes the whole row × row score matrix and masks most of it away. `SEGMENT_ATTENTION` runs sdpa once
per example instead (causal inside it), so a packed row costs what its examples cost on their own.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting

logger = logging.getLogger(__name__)

# `flash_attn` setting → transformers' `attn_implementation`; None lets transformers choose (sdpa, else eager).
ATTN_IMPLEMENTATIONS: dict[str, str | None] = {
    "auto": None,
    "disabled": "eager",
    "sdpa": "sdpa",
    "fa2": "flash_attention_2",
    "fa3": "flash_attention_3",
}
SEGMENT_ATTENTION = "sdpa_segments"
"""The attention implementation name under which `segment_sdpa_attention` is registered with transformers."""
# Implementations that keep examples packed in one row apart (given restarting position_ids and no mask).
PACKING_AWARE_ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3", SEGMENT_ATTENTION)
# Implementations whose cost grows with the examples rather than with the packed row (auto padding-free).
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", SEGMENT_ATTENTION)
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
        raise ModelError("bad_choice", key=Setting("flash_attn"), value=flash_attn,
                         choices=", ".join(ATTN_IMPLEMENTATIONS))
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


def unsloth_checkpointing(model_args: ModelArguments) -> bool | str:
    """Unsloth's activation checkpointing: its own with `use_unsloth_gc`, none with `disable_gradient_checkpointing`,
    else Unsloth's default (on)."""
    if model_args.use_unsloth_gc:
        return "unsloth"
    return not model_args.disable_gradient_checkpointing


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
        use_gradient_checkpointing=unsloth_checkpointing(model_args),
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
        "use_gradient_checkpointing": unsloth_checkpointing(model_args),
    }
    return FastLanguageModel.get_peft_model(model, **kwargs)


# ---------------------------------------------------------------- packed sequences


def base_model(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_packed_sequences(model: Any) -> bool:
    """Whether examples packed into one row (restarting position ids, no attention mask) stay apart in `model`.

    transformers' own text models build their masks with `masking_utils`, which reads the restarts as example
    boundaries for the implementations in `PACKING_AWARE_ATTENTION`. Remote code, multimodal wrappers and models
    with recurrent or linear-attention layers (which would carry state from one example into the next) do not.
    """
    import sys

    base = base_model(model)
    config = base.config
    if config.get_text_config() is not config or config._attn_implementation not in PACKING_AWARE_ATTENTION:
        return False
    module = sys.modules.get(type(base).__module__)
    if not type(base).__module__.startswith("transformers.models.") or not hasattr(module, "create_causal_mask"):
        return False
    layer_types = getattr(config, "layer_types", None) or []
    return all(kind in ("full_attention", "sliding_attention") for kind in layer_types)


def accepts_selected_logits(model: Any) -> bool:
    """Whether `model` takes a 2-D boolean `logits_to_keep` and `shift_labels` (transformers' standard LM heads)."""
    import inspect

    forward = type(base_model(model)).forward
    try:
        source = inspect.getsource(forward)
    except (OSError, TypeError):
        return False
    return "slice_logits_to_keep(" in source and "self.loss_function(" in source and "**kwargs" in source


def enable_segment_attention(model: Any) -> bool:
    """Switch a model that runs sdpa to `SEGMENT_ATTENTION`; returns whether it now uses it.

    For rows that hold a single example, and for decoding steps, it is exactly transformers' sdpa; the name is not
    saved with the model.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    base = base_model(model)
    if base.config._attn_implementation != "sdpa":
        return base.config._attn_implementation == SEGMENT_ATTENTION
    AttentionInterface.register(SEGMENT_ATTENTION, segment_sdpa_attention)
    AttentionMaskInterface.register(SEGMENT_ATTENTION, sdpa_mask)  # masks as sdpa builds them, for the stock path
    base.set_attn_implementation(SEGMENT_ATTENTION)  # warns and keeps sdpa for models that cannot switch
    return base.config._attn_implementation == SEGMENT_ATTENTION


def packed_segments(module: Any, query: Any, key: Any, position_ids: Any = None,
                    **kwargs: Any) -> list[list[tuple[int, int]]] | None:
    """Per row, the (start, end) of each example packed into it; None when sdpa must run with its mask.

    Examples start where the position ids do not go up by one, as in transformers' `find_packed_sequence_indices`.
    Only whole rows are split (queries and keys of the same length, so never a decoding step with a cache); a
    left-padded prompt splits into its padding and its text, which is what its mask says too.
    """
    import torch

    if position_ids is None or position_ids.dim() != 2 or not getattr(module, "is_causal", True):
        return None
    if getattr(module, "sliding_window", None) or any(kwargs.get(k) is not None for k in ("sliding_window", "s_aux")):
        return None
    rows, length = query.shape[0], query.shape[2]
    if key.shape[2] != length or position_ids.shape[-1] != length:
        return None
    positions = position_ids.expand(rows, -1)
    starts = torch.diff(positions, dim=-1, prepend=positions[:, :1] - 1) != 1
    starts[:, 0] = True
    found = starts.nonzero().tolist()
    if len(found) == rows:
        return None  # one example per row: the stock path with its mask is the same work
    segments: list[list[tuple[int, int]]] = [[] for _ in range(rows)]
    for index, (row, start) in enumerate(found):
        end = found[index + 1][1] if index + 1 < len(found) and found[index + 1][0] == row else length
        segments[row].append((start, end))
    return segments


def segment_sdpa_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                           **kwargs: Any) -> tuple[Any, None]:
    """transformers' sdpa, run once per example of each packed row (causal inside the example)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    segments = packed_segments(module, query, key, **kwargs)
    if segments is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    options = {name: kwargs[name] for name in ("dropout", "scaling") if name in kwargs}
    rows = []
    for row, bounds in enumerate(segments):
        parts = [sdpa_attention_forward(module, query[row:row + 1, :, start:end], key[row:row + 1, :, start:end],
                                        value[row:row + 1, :, start:end], None, is_causal=True, **options)[0]
                 for start, end in bounds]
        rows.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
    return (torch.cat(rows) if len(rows) > 1 else rows[0]), None
