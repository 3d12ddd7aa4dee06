"""Supervised fine-tuning: tokenizer → template → dataset → model → trainer → train → save → predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.pipeline import prepare_datasets
from engine.eval.predict import predict_after_training
from engine.model.chat_template import load_template
from engine.model.demo import resolve_model_path
from engine.model.loader import load_model, load_tokenizer
from engine.multimodal.data import MediaCollator, prepare_media_datasets
from engine.multimodal.plugins import get_plugin
from engine.train.trainer_setup import (
    batch_layout,
    build_trainer,
    compute_dtype,
    save_resolved_config,
    train_and_save,
)


def uses_trainer(config: RunConfig) -> bool:
    """Whether the run trains or evaluates; one that only predicts (LLaMA-Factory's predict configs) needs no
    Trainer and no tokenized training data."""
    return config.training.do_train or config.training.do_eval


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Fine-tune on conversations with the loss on the replies, then predict when asked; returns the final metrics."""
    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    if not uses_trainer(config):  # the model (and its adapters) predicts the eval rows, nothing else
        model = load_model(tokenizer, config.model, config.finetuning, is_trainable=False,
                           compute_dtype=compute_dtype(config))
        return predict_after_training(config, run_dir, model, tokenizer, template, abort)
    plugin = get_plugin(template, tokenizer, config.model)
    if plugin is not None:
        train_set, eval_set = prepare_media_datasets(config, template, tokenizer, plugin)
    else:
        train_set, eval_set = prepare_datasets(config, template, tokenizer)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    collator = None
    if plugin is not None:
        collator = MediaCollator(plugin, tokenizer.pad_token_id, batch_layout(config, model)["select_logits"])
    trainer = build_trainer(config, model, tokenizer, train_set, eval_set, run_dir=run_dir, abort=abort,
                            collator=collator)
    results = train_and_save(trainer, config, run_dir, resume)
    if config.training.do_predict and not abort.requested:
        results.update(predict_after_training(config, run_dir, trainer.model, tokenizer, template, abort))
    return results
