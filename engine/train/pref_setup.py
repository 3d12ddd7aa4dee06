"""What the preference stages share: the TRL config arguments, the optimizer, and the reference model."""

from __future__ import annotations

import logging
from typing import Any

from engine.config import RunConfig
from engine.train import reference

logger = logging.getLogger(__name__)


def trl_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for any TRL config: our TrainingArguments translation plus `max_length = cutoff_len`."""
    from engine.model.optimizers import updates_in_backward
    from engine.train.trainer_setup import training_kwargs

    kwargs = training_kwargs(config)  # sets bf16 and activation checkpointing explicitly (TRL defaults them on)
    kwargs["max_length"] = config.data.cutoff_len
    ft = config.finetuning
    if updates_in_backward(ft):  # layer-wise GaLore / APOLLO step inside the backward pass: no global clipping
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
    """DPO's and KTO's frozen reference (see `engine.train.reference`), in the run's compute dtype."""
    from engine.train.trainer_setup import compute_dtype

    return reference.load_reference_model(config, tokenizer, compute_dtype(config))
