"""Reward model: tokenizer → template → pairs of token ids → scoring model → RewardTrainer → train → save.

The run folder is a reward model for later stages (`reward_model: <run folder>`): the adapter (its `score` head
included, as a module peft saves in full) or the full weights, and config.yaml naming the base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig

HEAD_NAMES = ("score", "classifier")


def train_head(model: Any, pure_bf16: bool) -> None:
    """The scoring head starts random: it trains (in float32 unless pure_bf16) whatever else the method freezes."""
    import torch

    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if head is not None:
            head.requires_grad_(True)
            head.to(torch.bfloat16 if pure_bf16 else torch.float32)


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Learn a scalar score that ranks the chosen reply above the rejected one; returns the final metrics."""
    from trl import RewardConfig, RewardTrainer

    from engine.data.preference import build_preference_datasets
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.pref_setup import finish_trainer, trainer_extras, trl_kwargs
    from engine.train.trainer_setup import compute_dtype, save_resolved_config, train_and_save

    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so scoring later renders conversations exactly as here
    train_set, eval_set = build_preference_datasets(config, template, tokenizer, "reward")
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    if config.training.do_train and config.finetuning.finetuning_type == "freeze":
        train_head(model, config.finetuning.pure_bf16)
    args = RewardConfig(**trl_kwargs(config))
    trainer = RewardTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                            processing_class=tokenizer, **trainer_extras(config, model, args, run_dir, abort))
    return train_and_save(finish_trainer(trainer, config), config, run_dir, resume)
