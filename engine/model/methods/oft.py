"""OFT (orthogonal finetuning): each adapted linear layer's weight is rotated by a learnt block-diagonal
orthogonal matrix, which keeps the angles between its neurons (PEFT's `OFTConfig`).

The blocks are set by exactly one of `oft_rank` (how many blocks per layer) and `oft_block_size` (how large
each is); the other is 0. On a 4/8-bit bitsandbytes base this is QOFT. A run saves the adapter like LoRA does.
"""

from __future__ import annotations

from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.methods.peft_adapters import modules_to_save, setup_adapter, task_type
from engine.model.methods.weights import embedding_module_names, linear_targets
from engine.multimodal.parts import frozen_paths


def check(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> None:
    """Exactly one of `oft_rank` and `oft_block_size` is non-zero: PEFT derives the other from the layer width."""
    rank, block = finetuning_args.oft_rank, finetuning_args.oft_block_size
    if is_trainable and (rank == 0) == (block == 0):
        raise ModelError("oft_rank_or_block_size", rank=rank, block_size=block, rank_key=Setting("oft_rank"),
                         block_key=Setting("oft_block_size"))


def oft_kwargs(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> dict[str, Any]:
    """The `OFTConfig` arguments for a new adapter."""
    ft = finetuning_args
    to_save = modules_to_save(model, model_args, ft)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    embeddings = set(embedding_module_names(model)) & set(to_save) if tied else set()
    if embeddings:  # OFT cannot keep fully trained copies tied: the input and output rows would drift apart
        raise ModelError("oft_tied_embeddings", modules=", ".join(sorted(embeddings)), key=Setting("resize_vocab"),
                         target_key=Setting("additional_target"))
    return {
        "r": ft.oft_rank,
        "oft_block_size": ft.oft_block_size,
        "module_dropout": ft.module_dropout,
        "target_modules": linear_targets(model, ft.oft_target, "oft_target_not_found",
                                         ft.freeze_trainable_layers if ft.use_llama_pro else None,
                                         frozen=frozen_paths(model, ft)),
        "modules_to_save": to_save or None,
    }


def _add_oft(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> Any:
    from peft import OFTConfig, get_peft_model

    kwargs = oft_kwargs(model, model_args, finetuning_args)
    return get_peft_model(model, OFTConfig(task_type=task_type(finetuning_args), **kwargs))


def setup(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> Any:
    """Continue the loaded OFT adapter or add a new one; for inference, load the saved adapters."""
    return setup_adapter(model, model_args, finetuning_args, is_trainable, "OFT",
                         lambda base: _add_oft(base, model_args, finetuning_args))
