"""Checks of a config's own values and combinations (torch-free, no other layer): `engine.validation` runs them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine.config.finetuning import PREF_LOSSES
from engine.config.loader import GROUPS, RunConfig
from engine.config.rewards import compile_format_pattern, parse_reward_funcs
from engine.errors import ConfigError, Phrase, Setting
from engine.paths import looks_like_local_path

# Losses our config names (LLaMA-Factory's) that the installed TRL no longer has.
UNAVAILABLE_PREF_LOSSES = ("kto_pair",)


def check_field_ranges(config: RunConfig) -> None:
    """Every value against its field's choices and min/max hints."""
    for group_name in GROUPS:
        group = getattr(config, group_name)
        for f in dataclasses.fields(group):
            _check_one(f.name, getattr(group, f.name), f.metadata)


def _check_one(key: str, value: Any, meta: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        shown = ", ".join(str(c) for c in choices if c is not None)
        raise ConfigError("bad_choice", key=Setting(key), value=value, choices=shown)
    if not isinstance(value, (int, float)):
        return
    low, high = meta.get("min"), meta.get("max")
    if low is not None and (value < low or (meta.get("exclusive_min") and value == low)):
        relation = Phrase("greater_than" if meta.get("exclusive_min") else "at_least")
        raise ConfigError("too_small", key=Setting(key), value=value, relation=relation, limit=low)
    if high is not None and value > high:
        raise ConfigError("too_large", key=Setting(key), value=value, limit=high)


# Accepted so LLaMA-Factory configs load, but not implemented here: setting them is refused, never ignored.
UNSUPPORTED = {"shift_attn": ("model", False), "streaming": ("data", False), "adapter_folder": ("model", None)}


def check_unsupported(config: RunConfig) -> None:
    """Refuse options this engine accepts by name but does not implement."""
    for key, (group, off) in UNSUPPORTED.items():
        if getattr(getattr(config, group), key) not in (off, None, False, ""):
            raise ConfigError("option_not_supported", key=Setting(key))


def check_model(config: RunConfig) -> None:
    """The model path exists when it is a local path; quantization fits the method."""
    model = config.model
    name = model.model_name_or_path
    if not name or not name.strip():
        raise ConfigError("no_model", setting=Setting("model_name_or_path"))
    if name != "demo" and looks_like_local_path(name) and not Path(name).expanduser().exists():
        raise ConfigError("model_path_missing", path=name)


def check_training(config: RunConfig) -> None:
    """Combinations of training values that cannot work together."""
    train, data, ft = config.training, config.data, config.finetuning
    if train.max_steps == 0:
        raise ConfigError("zero_steps")
    if train.bf16 and train.fp16:
        raise ConfigError("bf16_and_fp16")
    if data.val_size >= 1 and not float(data.val_size).is_integer():
        raise ConfigError("val_size_fraction", value=data.val_size)
    has_eval_data = data.val_size > 0 or bool(data.eval_dataset)
    if train.eval_strategy != "no" and not has_eval_data:
        raise ConfigError("eval_without_data", key=Setting("eval_strategy"), strategy=train.eval_strategy,
                          val_size=Setting("val_size"), eval_dataset=Setting("eval_dataset"))
    wants_eval = [key for key, value in (("load_best_model_at_end", train.load_best_model_at_end),
                                         ("early_stopping_patience", train.early_stopping_patience),
                                         ("early_stopping_steps", ft.early_stopping_steps)) if value]
    if wants_eval and train.eval_strategy == "no":
        raise ConfigError("best_model_needs_eval", key=Setting(wants_eval[0]))
    if train.deepspeed and not Path(train.deepspeed).is_file():
        raise ConfigError("deepspeed_config_missing", path=train.deepspeed)
    if train.output_dir and Path(train.output_dir).exists() and not Path(train.output_dir).is_dir():
        raise ConfigError("output_dir_is_file", path=train.output_dir)


def check_preference(config: RunConfig) -> None:
    """Preference settings that TRL cannot honour, caught before anything loads."""
    ft, train = config.finetuning, config.training
    if ft.stage == "dpo" and ft.pref_loss in UNAVAILABLE_PREF_LOSSES:
        usable = ", ".join(loss for loss in PREF_LOSSES if loss not in UNAVAILABLE_PREF_LOSSES)
        raise ConfigError("pref_loss_unavailable", loss=ft.pref_loss, choices=usable)
    if ft.stage == "dpo" and ft.dpo_label_smoothing > 0 and ft.pref_loss not in ("sigmoid", "simpo"):
        raise ConfigError("label_smoothing_unsupported", value=ft.dpo_label_smoothing, loss=ft.pref_loss)
    # KTO pairs each reply with another from its batch: batch 1 runs as 2 with half the accumulation (see kto.py).
    per_step = train.per_device_train_batch_size * train.gradient_accumulation_steps
    if ft.stage == "kto" and train.do_train and per_step < 2:
        raise ConfigError("kto_batch_size", value=train.per_device_train_batch_size)
    # ORPO and SimPO run trainers of their own, which take neither the BCO term nor LD-DPO's weighting.
    dpo_proper = ft.stage == "dpo" and ft.pref_loss not in ("orpo", "simpo")
    for key, value in (("pref_bco_weight", ft.pref_bco_weight), ("ld_alpha", ft.ld_alpha)):
        if value and not dpo_proper:
            raise ConfigError("pref_option_needs_dpo", key=Setting(key), stage=ft.stage, loss=ft.pref_loss)
    uses_reference = ft.stage in ("dpo", "kto") or (ft.stage == "sft" and ft.use_asft_loss)
    ref = ft.ref_model if uses_reference else None
    if ref and looks_like_local_path(ref) and not Path(ref).expanduser().exists():
        raise ConfigError("model_path_missing", path=ref)


def check_rl(config: RunConfig) -> None:
    """PPO and GRPO need a known reward; PPO's reference is the model without its LoRA adapter."""
    ft, train = config.finetuning, config.training
    if ft.stage not in ("ppo", "grpo"):
        return
    names = [name for name, _ in parse_reward_funcs(config)]
    if not names:
        raise ConfigError("stage_needs_reward", stage=ft.stage)
    if "format" in names:
        compile_format_pattern(ft.reward_format_pattern)
    if ft.reward_model and ft.reward_model_type == "api":
        raise ConfigError("reward_api_unsupported")
    if ft.reward_model and looks_like_local_path(ft.reward_model) and not Path(ft.reward_model).expanduser().exists():
        raise ConfigError("model_path_missing", path=ft.reward_model)
    if ft.stage == "ppo" and ft.finetuning_type != "lora":
        raise ConfigError("ppo_needs_lora", method=ft.finetuning_type)
    batch = train.per_device_train_batch_size * train.gradient_accumulation_steps
    if ft.stage == "grpo" and batch % ft.num_generations:
        raise ConfigError("grpo_batch_not_divisible", batch=batch, generations=ft.num_generations)


def check_values(config: RunConfig, command: str = "train") -> RunConfig:
    """Every check of the config's own values and combinations (no registry, template or file is read).

    `engine.validation.validate_config` runs these and then the checks against templates, stages and datasets.
    """
    check_field_ranges(config)
    check_unsupported(config)
    check_model(config)
    if command == "train":
        check_training(config)
        check_preference(config)
        check_rl(config)
    return config
