"""GRPO: sample `num_generations` completions per prompt and push towards the better ones of each group.

tokenizer → template → prompts (rendered with our template) → rewards → model → GRPOTrainer → train → save.
No value head and, with `grpo_beta: 0`, no reference model: the group's mean reward is the baseline.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.config import RunConfig

logger = logging.getLogger(__name__)


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Optimise the rewards with TRL's GRPOTrainer; returns the final metrics."""
    from transformers import set_seed
    from trl import GRPOTrainer

    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.model.optimizers import create_optimizer
    from engine.train.rewards import build_rewards, trl_reward_funcs
    from engine.train.trainer_setup import compute_dtype, make_callbacks, save_resolved_config, train_and_save

    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)
    train_set, eval_set = build_prompt_datasets(config, template, tokenizer)
    rewards = build_rewards(config)
    set_seed(config.training.seed)  # the new adapter's initial weights, before the trainer seeds the rest
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    args = build_grpo_config(config, [reward.weight for reward in rewards])
    optimizer = create_optimizer(model, args.learning_rate, args.weight_decay, config.finetuning,
                                 {"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon},
                                 optim=config.training.optim)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=trl_reward_funcs(rewards),
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        callbacks=make_callbacks(config, run_dir, abort),
        optimizers=(optimizer, None),
    )
    return train_and_save(trainer, config, run_dir, resume)


def build_grpo_config(config: RunConfig, reward_weights: list[float]) -> Any:
    """TRL's GRPOConfig: our training arguments plus the group size, completion length, KL weight and rewards."""
    from trl import GRPOConfig

    from engine.train.trainer_setup import training_kwargs

    ft = config.finetuning
    return GRPOConfig(**{
        **training_kwargs(config),  # sets bf16 and gradient checkpointing explicitly, as TRL's defaults differ
        "num_generations": ft.num_generations,
        "max_completion_length": ft.max_completion_length,
        "beta": ft.grpo_beta,
        "reward_weights": reward_weights,
        "remove_unused_columns": False,  # the rewards read the `example` column
    })


def build_prompt_datasets(config: RunConfig, template: Any, tokenizer: Any) -> tuple[Any, Any]:
    """`datasets.Dataset`s with `prompt` (text up to the assistant header) and `example` (JSON, for the rewards)."""
    from datasets import Dataset

    from engine.data.pipeline import load_split_examples
    from engine.data.preprocess import require_rows
    from engine.train.rewards import rl_examples

    train, evaluation = (rl_examples(part) for part in load_split_examples(config, require_response=False))
    require_rows(train, config.data.dataset or "")
    logger.info("GRPO on %d prompts%s.", len(train), f", evaluating on {len(evaluation)}" if evaluation else "")

    def rows(examples: list[dict]) -> list[dict]:
        return [{"prompt": prompt_text(config, template, tokenizer, ex), "example": json.dumps(ex, ensure_ascii=False)}
                for ex in examples]

    return Dataset.from_list(rows(train)), Dataset.from_list(rows(evaluation)) if evaluation else None


def prompt_text(config: RunConfig, template: Any, tokenizer: Any, example: dict) -> str:
    """The prompt as text, rendered by our template; without a leading bos when the tokenizer adds its own."""
    from engine.templates import render_text

    text = render_text(template, example["messages"], example.get("system") or config.data.default_system,
                       example.get("tools"), enable_thinking=config.data.enable_thinking, tokenizer=tokenizer)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
        text = text[len(bos):]  # TRL encodes the prompt with the tokenizer's special tokens
    return text
