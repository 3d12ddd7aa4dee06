"""KTO: tokenizer → template → replies tagged good or bad → model (+ reference) → KTOTrainer → train → save."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.config import RunConfig

logger = logging.getLogger(__name__)


def kto_batch_layout(config: RunConfig) -> dict[str, int]:
    """Batch size and accumulation for KTO, whose KL term pairs each reply with another one of the same batch.

    A batch of 1 has no partner, so batch 1 × accumulation N (LLaMA-Factory's KTO example) runs as batch d ×
    accumulation N/d for the smallest divisor d ≥ 2 of N: the same examples per optimiser step, a little more memory.
    """
    train = config.training
    batch, steps = train.per_device_train_batch_size, train.gradient_accumulation_steps
    if batch > 1 or steps < 2:
        return {}
    divisor = next(d for d in range(2, steps + 1) if steps % d == 0)
    logger.warning("KTO pairs replies within a batch: per_device_train_batch_size 1 × gradient_accumulation_steps %d "
                   "runs as %d × %d (the same %d examples per optimiser step).", steps, divisor, steps // divisor, steps)
    return {"per_device_train_batch_size": divisor, "gradient_accumulation_steps": steps // divisor}


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Raise the reward of desirable replies and lower that of undesirable ones; returns the final metrics."""
    from trl import KTOConfig, KTOTrainer

    from engine.data.preference import auto_prefix, build_preference_datasets
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.pref_setup import finish_trainer, load_reference_model, trainer_extras, trl_kwargs
    from engine.train.trainer_setup import compute_dtype, save_resolved_config, train_and_save

    ft = config.finetuning
    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    train_set, eval_set = build_preference_datasets(config, template, tokenizer, "kto",
                                                    strip_prefix=auto_prefix(tokenizer))
    model = load_model(tokenizer, config.model, ft, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    ref_model = load_reference_model(config, tokenizer)
    # Each reply's KL partner is its neighbour in the batch, so batches keep the (already shuffled) data order.
    args = KTOConfig(**{**trl_kwargs(config), **kto_batch_layout(config), "train_sampling_strategy": "sequential"},
                     beta=ft.pref_beta, desirable_weight=ft.kto_chosen_weight,
                     undesirable_weight=ft.kto_rejected_weight)
    trainer = KTOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, **trainer_extras(config, model, args, run_dir, abort))
    return train_and_save(finish_trainer(trainer, config), config, run_dir, resume)
