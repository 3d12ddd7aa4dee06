"""SimPO (`stage: dpo`, `pref_loss: simpo`): tokenizer → template → pairs → model → CPOTrainer → train → save.

SimPO needs no reference model: the margin between the length-normalised log-probabilities of the chosen and
rejected replies must exceed `simpo_gamma`. TRL trains it as CPO with `loss_type="simpo"`; `pref_ftx` is CPO's
behaviour-cloning weight `cpo_alpha` (0 for plain SimPO).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.config import RunConfig


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Rank the chosen reply above the rejected one by a margin, without a reference; returns the final metrics."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # trl.experimental warns on import otherwise
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    from engine.data.preference import build_preference_datasets
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.pref_setup import finish_trainer, trainer_extras, trl_kwargs
    from engine.train.trainer_setup import compute_dtype, save_resolved_config, train_and_save

    ft = config.finetuning
    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)  # so chat and export reuse exactly this template
    # This trainer tokenizes without the tokenizer's special tokens (it adds a missing BOS itself): keep the prompt whole.
    train_set, eval_set = build_preference_datasets(config, template, tokenizer, "pairs")
    model = load_model(tokenizer, config.model, ft, is_trainable=config.training.do_train,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    args = CPOConfig(**trl_kwargs(config), loss_type="simpo", beta=ft.pref_beta, simpo_gamma=ft.simpo_gamma,
                     cpo_alpha=ft.pref_ftx, label_smoothing=ft.dpo_label_smoothing)
    trainer = CPOTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                         processing_class=tokenizer, **trainer_extras(config, model, args, run_dir, abort))
    return train_and_save(finish_trainer(trainer, config), config, run_dir, resume)
