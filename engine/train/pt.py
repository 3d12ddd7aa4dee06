"""Pre-training (continued): tokenizer → text dataset → model → trainer → train → save."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.config import RunConfig

logger = logging.getLogger(__name__)


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Train next-token prediction on plain text, packed into cutoff_len blocks; returns the final metrics."""
    from engine.data.pipeline import prepare_datasets
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.trainer_setup import build_trainer, compute_dtype, train_and_save

    if config.data.neat_packing:
        logger.warning("neat_packing applies to sft: pre-training packs its text as one stream cut into cutoff_len "
                       "blocks, so a block can hold the end of one document and the start of the next.")
    tokenizer = load_tokenizer(config.model)
    train_set, eval_set = prepare_datasets(config, None, tokenizer)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    trainer = build_trainer(config, model, tokenizer, train_set, eval_set, run_dir=run_dir, abort=abort)
    return train_and_save(trainer, config, run_dir, resume)
