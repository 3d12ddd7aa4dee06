"""From config to tokenized train and eval sets: load, fill placeholders, split, tokenize, cache, pack.

The tokenized rows come from `tokenized_path` when it holds them, else from the tokenization cache, else from
tokenizing (in `preprocessing_num_workers` processes) — and are then saved to both. A run with `tokenized_path` and
no `dataset` trains from the saved rows alone. SFT packing runs after loading, so saved rows are unpacked and one
entry serves runs with and without packing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.data.columns import Splits, TokenColumns
from engine.data.preprocess import TokenizedDataset, pack_rows, require_rows, tokenize_pt, tokenize_sft

logger = logging.getLogger(__name__)


def load_split_examples(config: RunConfig, *, require_response: bool) -> tuple[list[dict], list[dict]]:
    """Canonical train and eval examples (eval from eval_dataset, else val_size held out of the training data)."""
    from engine.data import load_examples, split_examples
    from engine.data.loader import hub_tokens

    data, seed = config.data, config.training.seed
    probs = [float(p) for p in data.interleave_probs.split(",")] if data.interleave_probs else None
    common = {"require_response": require_response, "max_samples": data.max_samples, "seed": seed,
              "mix_strategy": data.mix_strategy, "interleave_probs": probs,
              "placeholders": {"name": data.identity_name, "author": data.identity_author},
              "hub_tokens": hub_tokens(config.model), "media_dir": data.media_dir}
    train = load_examples(data.dataset, data.dataset_dir, **common) if data.dataset else []
    if data.eval_dataset:
        return train, load_examples(data.eval_dataset, data.dataset_dir, **common)
    if data.val_size:
        size = int(data.val_size) if data.val_size >= 1 else data.val_size
        return split_examples(train, size, seed)
    return train, []


def _tokenize(config: RunConfig, examples: list[dict], template: Any, tokenizer: Any) -> list[dict]:
    """Rows of one split: pre-training blocks (packed when asked), or SFT rows left unpacked."""
    from engine.data.workers import worker_count

    data, stage = config.data, config.finetuning.stage
    workers = worker_count(data.preprocessing_num_workers, len(examples))
    common = {"cutoff_len": data.cutoff_len, "batch_size": data.preprocessing_batch_size, "num_workers": workers}
    if stage == "pt":
        from engine.data import example_text

        packing = data.packing is not False  # pre-training packs unless told not to
        return tokenize_pt([example_text(e) for e in examples], tokenizer, packing=packing, **common)
    return tokenize_sft(examples, template, tokenizer, train_on_prompt=data.train_on_prompt,
                        mask_history=data.mask_history, default_system=data.default_system,
                        enable_thinking=data.enable_thinking, preserve_thinking=data.preserve_thinking, **common)


def tokenize_splits(config: RunConfig, template: Any, tokenizer: Any) -> Splits:
    """Read the datasets and tokenize them: `{"train": …, "eval": …}` (no eval when there is no eval data)."""
    started = time.perf_counter()
    train_examples, eval_examples = load_split_examples(config, require_response=config.finetuning.stage != "pt")
    train_rows = _tokenize(config, train_examples, template, tokenizer)
    if config.training.do_train:
        require_rows(train_rows, config.data.dataset or "")
    splits = {"train": TokenColumns.from_rows(train_rows)}
    if eval_examples:
        splits["eval"] = TokenColumns.from_rows(_tokenize(config, eval_examples, template, tokenizer))
    logger.info("Tokenized %d examples in %.1f s.", len(train_examples) + len(eval_examples),
                time.perf_counter() - started)
    return splits


def load_tokenized_splits(config: RunConfig, template: Any, tokenizer: Any) -> Splits:
    """The run's tokenized splits: from `tokenized_path` or the cache when they hold them, else tokenized now."""
    from engine.data.cache import cached_splits, saved_splits
    from engine.data.fingerprint import cache_key, tokenize_settings

    data = config.data

    def from_cache() -> Splits:
        key = cache_key(config, template, tokenizer)
        if key is None:
            return tokenize_splits(config, template, tokenizer)
        return cached_splits(key, lambda: tokenize_splits(config, template, tokenizer),
                             overwrite=data.overwrite_cache)

    if data.tokenized_path:
        settings = tokenize_settings(config, template, tokenizer)
        tokenize = from_cache if data.dataset else None  # no dataset: the saved rows are all there is
        return saved_splits(Path(data.tokenized_path), settings, tokenize, overwrite=data.overwrite_cache)
    return from_cache()


def prepare_datasets(config: RunConfig, template: Any, tokenizer: Any) -> tuple[TokenizedDataset, Any]:
    """Tokenized train set and eval set (None when there is no eval data) for pt and sft."""
    data = config.data
    splits = load_tokenized_splits(config, template, tokenizer)
    train_columns, eval_columns = splits["train"], splits.get("eval")
    if config.training.do_train:
        require_rows(train_columns, data.dataset or data.tokenized_path or "")
    if data.packing and config.finetuning.stage != "pt":  # the cache holds unpacked SFT rows
        train = TokenizedDataset(pack_rows(train_columns.to_rows(), data.cutoff_len))
        evaluation = TokenizedDataset(pack_rows(eval_columns.to_rows(), data.cutoff_len)) if eval_columns else None
    else:
        train = TokenizedDataset(train_columns)
        evaluation = TokenizedDataset(eval_columns) if eval_columns else None
    logger.info("Training on %d sequences (%d tokens)%s.", len(train), train.num_tokens,
                f", evaluating on {len(evaluation)}" if evaluation else "")
    return train, evaluation


def check_local_data(config: RunConfig) -> int | None:
    """Read and convert the run's local datasets (torch-free, no tokenizer) so bad files fail before a launch.

    Returns the number of training rows the run will use (after max_samples and the validation split), or None
    when a training dataset is not a local file: those (hubs, script_url, cloud files) are left to the training
    process, since reading them here would download them into the caller; what can be checked without a download
    (the package a hub needs, a loading script) is checked. A run with tokenized_path and no dataset uses the
    rows saved there: their count, from its meta.json. Media files are opened and matched to their placeholders
    and to what the run's template reads (`check_media`).
    """
    from engine.data import get_dataset_attrs, load_examples, split_examples
    from engine.data.cache import saved_train_rows
    from engine.data.loader import media_folder
    from engine.data.media import check_media
    from engine.data.sources import check_source

    data = config.data
    if data.tokenized_path and not data.dataset:
        return saved_train_rows(Path(data.tokenized_path), overwrite=data.overwrite_cache)
    require_response = config.finetuning.stage != "pt"
    template, modalities = _template_modalities(config)
    rows: int | None = 0
    for names in (data.dataset, data.eval_dataset):
        if not names:
            continue
        attrs = get_dataset_attrs(names, data.dataset_dir)
        for attr in attrs:
            if attr.load_from != "file":
                check_source(attr, data.dataset_dir)
        local = [attr.name for attr in attrs if attr.load_from == "file"]
        if names == data.dataset and len(local) < len(attrs):
            rows = None
        if not local:
            continue
        examples = load_examples(local, data.dataset_dir, require_response=require_response,
                                 max_samples=data.max_samples, seed=config.training.seed, media_dir=data.media_dir)
        check_media(examples, modalities=modalities, where=media_folder(data.dataset_dir, data.media_dir),
                    template=template)
        if names != data.dataset:
            continue
        if data.val_size and not data.eval_dataset:
            examples, _ = split_examples(examples, int(data.val_size) if data.val_size >= 1 else data.val_size,
                                         config.training.seed)
        if rows is not None:
            rows = len(examples)
    return rows


def _template_modalities(config: RunConfig) -> tuple[str | None, frozenset[str] | None]:
    """The run's template name (`template`, else the model registry's for the model, else the one a local model
    folder recommends) and the media it reads; None when none is named or it does not resolve (validation reports
    a bad name; media files and counts are still checked)."""
    from engine.errors import StudioError
    from engine.model.chat_template import recommended_template
    from engine.model.families import template_for
    from engine.templates import get_template

    model = config.model.model_name_or_path
    name = config.model.template or template_for(model) or (recommended_template(model) if model else None)
    if not name:
        return None, None
    try:
        return name, get_template(name).modalities
    except StudioError:
        return name, None
