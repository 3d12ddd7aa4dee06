"""What the preference stages share: the TRL config arguments, the optimizer, and the reference model."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from engine.config import RunConfig

logger = logging.getLogger(__name__)


def trl_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for any TRL config: our TrainingArguments translation plus `max_length = cutoff_len`."""
    from engine.train.trainer_setup import training_kwargs

    kwargs = training_kwargs(config)  # sets bf16 and activation checkpointing explicitly (TRL defaults them on)
    kwargs["max_length"] = config.data.cutoff_len
    ft = config.finetuning
    if ft.use_galore and ft.galore_layerwise:  # it steps inside the backward pass: no global clipping
        kwargs["max_grad_norm"] = 0.0
    return kwargs


def trainer_extras(config: RunConfig, model: Any, args: Any, run_dir: Any, abort: Any) -> dict[str, Any]:
    """The callbacks and optimizer (GaLore, BAdam or LoRA+ when asked) every TRL trainer takes."""
    from engine.model.optimizers import create_optimizer
    from engine.train.trainer_setup import make_callbacks

    optimizer = create_optimizer(model, args.learning_rate, args.weight_decay, config.finetuning,
                                 {"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon},
                                 optim=config.training.optim)
    return {"callbacks": make_callbacks(config, run_dir, abort), "optimizers": (optimizer, None)}


def finish_trainer(trainer: Any, config: RunConfig) -> Any:
    """Hooks that need the built trainer (BAdam switches blocks from a callback)."""
    if config.finetuning.use_badam:
        from engine.train.trainer_setup import _attach_badam

        _attach_badam(trainer, config.finetuning.badam_mode)
    return trainer


def load_reference_model(config: RunConfig, tokenizer: Any) -> Any | None:
    """The frozen reference policy of DPO and KTO, or None when TRL derives it from the trained LoRA model.

    `ref_model` (with `ref_model_adapters`, `ref_model_quantization_bit`) when set; otherwise, for full and freeze
    training, the base model loaded again; with LoRA nothing: TRL then scores the reference with a frozen copy of the
    starting adapter (the base model itself for a new adapter), so no second model is held in memory.
    """
    from engine.model.loader import load_model
    from engine.train.trainer_setup import compute_dtype

    ft = config.finetuning
    if not ft.ref_model and ft.finetuning_type == "lora":
        return None
    model_args = config.model
    if ft.ref_model:
        model_args = dataclasses.replace(model_args, model_name_or_path=ft.ref_model,
                                         adapter_name_or_path=ft.ref_model_adapters,
                                         quantization_bit=ft.ref_model_quantization_bit)
    # Adapters of a reference model are merged or applied as LoRA, whatever the policy trains.
    ref_args = dataclasses.replace(ft, finetuning_type="lora" if model_args.adapter_name_or_path else "full")
    logger.info("Reference model: %s%s.", model_args.model_name_or_path,
                f" + {model_args.adapter_name_or_path}" if model_args.adapter_name_or_path else "")
    return load_model(tokenizer, model_args, ref_args, is_trainable=False, compute_dtype=compute_dtype(config))
