"""From config to tokenized train and eval sets: load, fill placeholders, split, tokenize, pack."""

from __future__ import annotations

import logging
from typing import Any

from engine.config import RunConfig
from engine.data.preprocess import TokenizedDataset, pack_rows, require_rows, tokenize_pt, tokenize_sft

logger = logging.getLogger(__name__)


def load_split_examples(config: RunConfig, *, require_response: bool) -> tuple[list[dict], list[dict]]:
    """Canonical train and eval examples (eval from eval_dataset, else val_size held out of the training data)."""
    from engine.data import load_examples, split_examples

    data, seed = config.data, config.training.seed
    probs = [float(p) for p in data.interleave_probs.split(",")] if data.interleave_probs else None
    common = {"require_response": require_response, "max_samples": data.max_samples, "seed": seed,
              "mix_strategy": data.mix_strategy, "interleave_probs": probs,
              "placeholders": {"name": data.identity_name, "author": data.identity_author}}
    train = load_examples(data.dataset, data.dataset_dir, **common) if data.dataset else []
    if data.eval_dataset:
        return train, load_examples(data.eval_dataset, data.dataset_dir, **common)
    if data.val_size:
        size = int(data.val_size) if data.val_size >= 1 else data.val_size
        return split_examples(train, size, seed)
    return train, []


def _tokenize(config: RunConfig, examples: list[dict], template: Any, tokenizer: Any) -> list[dict]:
    data, stage = config.data, config.finetuning.stage
    if stage == "pt":
        from engine.data import example_text

        packing = data.packing is not False  # pre-training packs unless told not to
        return tokenize_pt([example_text(e) for e in examples], tokenizer, cutoff_len=data.cutoff_len,
                           packing=packing)
    rows = tokenize_sft(examples, template, tokenizer, cutoff_len=data.cutoff_len,
                        train_on_prompt=data.train_on_prompt, mask_history=data.mask_history,
                        default_system=data.default_system, enable_thinking=data.enable_thinking)
    return pack_rows(rows, data.cutoff_len) if data.packing else rows


def prepare_datasets(config: RunConfig, template: Any, tokenizer: Any) -> tuple[TokenizedDataset, Any]:
    """Tokenized train set and eval set (None when there is no eval data) for pt and sft."""
    train_examples, eval_examples = load_split_examples(config, require_response=config.finetuning.stage != "pt")
    train_rows = _tokenize(config, train_examples, template, tokenizer)
    if config.training.do_train:
        require_rows(train_rows, config.data.dataset or "")
    eval_rows = _tokenize(config, eval_examples, template, tokenizer) if eval_examples else []
    train, evaluation = TokenizedDataset(train_rows), TokenizedDataset(eval_rows) if eval_rows else None
    logger.info("Training on %d sequences (%d tokens)%s.", len(train), train.num_tokens,
                f", evaluating on {len(evaluation)}" if evaluation else "")
    return train, evaluation



def check_local_data(config: RunConfig) -> None:
    """Read and convert the run's local datasets (torch-free, no tokenizer) so bad files fail before a launch.

    Hub datasets are left to the training process: reading them here would download them into the caller.
    """
    from engine.data import get_dataset_attrs, load_examples, split_examples

    data = config.data
    require_response = config.finetuning.stage != "pt"
    for names in (data.dataset, data.eval_dataset):
        if not names:
            continue
        local = [attr.name for attr in get_dataset_attrs(names, data.dataset_dir) if attr.load_from == "file"]
        if not local:
            continue
        examples = load_examples(local, data.dataset_dir, require_response=require_response,
                                 max_samples=data.max_samples, seed=config.training.seed)
        if names == data.dataset and data.val_size and not data.eval_dataset:
            split_examples(examples, int(data.val_size) if data.val_size >= 1 else data.val_size,
                           config.training.seed)
