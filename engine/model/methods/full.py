"""Full finetuning: every weight of the model trains; a run saves the whole model."""

from __future__ import annotations

from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.methods.weights import cast_trainable


def check(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> None:
    """LLaMA Pro picks blocks to train, which full finetuning cannot honour (it trains them all)."""
    if is_trainable and finetuning_args.use_llama_pro:
        raise ModelError("llama_pro_method", method="full", key=Setting("use_llama_pro"))


def setup(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool) -> Any:
    """Train every weight (for inference the loaded model is the run's own)."""
    if not is_trainable:
        return model
    model.requires_grad_(True)
    cast_trainable(model, finetuning_args.pure_bf16)
    return model
