"""KTO: tokenizer → template → replies tagged good or bad → model (+ reference) → KTOTrainer → train → save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig


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
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    train_set, eval_set = build_preference_datasets(config, template, tokenizer, "kto",
                                                    strip_prefix=auto_prefix(tokenizer))
    model = load_model(tokenizer, config.model, ft, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    ref_model = load_reference_model(config, tokenizer)
    # Each reply's KL partner is its neighbour in the batch, so batches keep the (already shuffled) data order.
    args = KTOConfig(**{**trl_kwargs(config), "train_sampling_strategy": "sequential"}, beta=ft.pref_beta,
                     desirable_weight=ft.kto_chosen_weight, undesirable_weight=ft.kto_rejected_weight)
    trainer = KTOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, **trainer_extras(config, model, args, run_dir, abort))
    return train_and_save(finish_trainer(trainer, config), config, run_dir, resume)
