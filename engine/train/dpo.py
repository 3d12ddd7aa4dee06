"""Direct preference optimisation: tokenizer → template → pairs → model (+ reference) → DPOTrainer → train → save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config import RunConfig


def dpo_loss(config: RunConfig) -> dict[str, Any]:
    """Our preference-loss keys as DPOConfig's `loss_type`, `loss_weights`, `label_smoothing` and `ld_alpha`.

    TRL applies label smoothing to the sigmoid loss only in its `robust` form (robust DPO). `pref_bco_weight` mixes
    in TRL's `bco_pair` loss the way LLaMA-Factory does, (preference + w·BCO) / (1 + w); TRL's BCO has no running
    reward baseline (LLaMA-Factory's subtracts one). The SFT term on the chosen reply (`pref_ftx`, TRL's former
    `rpo_alpha`) is the `sft` loss added with that weight. `ld_alpha` is TRL's LD-DPO weight of the reply tokens
    past the shorter reply's length; TRL weights the reference's log-probabilities the same way (LLaMA-Factory
    only the policy's).
    """
    ft = config.finetuning
    losses = ["robust" if ft.pref_loss == "sigmoid" and ft.dpo_label_smoothing > 0 else ft.pref_loss]
    weights = [1.0]
    if ft.pref_bco_weight > 0:
        losses.append("bco_pair")
        weights = [1 / (1 + ft.pref_bco_weight), ft.pref_bco_weight / (1 + ft.pref_bco_weight)]
    if ft.pref_ftx > 0:
        losses.append("sft")
        weights.append(ft.pref_ftx)
    return {"loss_type": losses, "loss_weights": weights if len(losses) > 1 else None,
            "label_smoothing": ft.dpo_label_smoothing, "ld_alpha": ft.ld_alpha}


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Prefer the chosen reply over the rejected one, relative to a frozen reference; returns the final metrics."""
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from engine.data.preference import auto_prefix, build_preference_datasets
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.multimodal.data import MediaPreferenceCollator
    from engine.multimodal.plugins import get_plugin
    from engine.train.pref_setup import finish_trainer, load_reference_model, trainer_extras, trl_kwargs
    from engine.train.trainer_setup import compute_dtype, save_resolved_config, train_and_save

    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    plugin = get_plugin(template, tokenizer, config.model)
    train_set, eval_set = build_preference_datasets(config, template, tokenizer, "pairs",
                                                    strip_prefix=auto_prefix(tokenizer), media=plugin)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    ref_model = load_reference_model(config, tokenizer)
    kwargs = trl_kwargs(config)
    extra: dict[str, Any] = {}
    if plugin is not None:  # each row's media reach the collator, which adds their tensors to both halves
        kwargs["remove_unused_columns"] = False
        extra["data_collator"] = MediaPreferenceCollator(
            DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id, max_length=config.data.cutoff_len), plugin)
    args = DPOConfig(**kwargs, beta=config.finetuning.pref_beta, **dpo_loss(config))
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, **extra, **trainer_extras(config, model, args, run_dir, abort))
    return train_and_save(finish_trainer(trainer, config), config, run_dir, resume)
