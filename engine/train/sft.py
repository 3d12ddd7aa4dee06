"""Supervised fine-tuning: tokenizer → template → dataset → model → trainer → train → save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Fine-tune on conversations with the loss on the replies; returns the final metrics."""
    from engine.data.pipeline import prepare_datasets
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.trainer_setup import build_trainer, compute_dtype, save_resolved_config, train_and_save

    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    train_set, eval_set = prepare_datasets(config, template, tokenizer)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    trainer = build_trainer(config, model, tokenizer, train_set, eval_set, run_dir=run_dir, abort=abort)
    results = train_and_save(trainer, config, run_dir, resume)
    if config.training.do_predict and not abort.requested:
        from engine.eval.predict import predict_after_training

        results.update(predict_after_training(config, run_dir, trainer.model, tokenizer, template, abort))
    return results
