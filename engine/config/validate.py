"""Checks of values and combinations, run before anything loads (the same code for the CLI and the studio)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from engine.config.finetuning import PREF_LOSSES
from engine.config.loader import GROUPS, RunConfig
from engine.errors import ConfigError, Phrase, Setting
from engine.paths import looks_like_local_path

# The dataset kind (see `engine.data.dataset_kind`) a stage trains on, where it needs a particular one.
STAGE_DATASET_KINDS = {"rm": "ranking", "dpo": "ranking", "kto": "kto"}
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
    if model.quantization_bit is not None and config.finetuning.finetuning_type not in ("lora", "oft"):
        raise ConfigError("quantization_needs_lora", method=config.finetuning.finetuning_type)
    if model.template:
        from engine.templates import get_template

        get_template(model.template)


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
    if (train.load_best_model_at_end or train.early_stopping_patience) and train.eval_strategy == "no":
        raise ConfigError("best_model_needs_eval")
    if ft.use_galore and ft.use_badam:
        raise ConfigError("galore_and_badam")
    if (ft.use_galore or ft.use_badam) and ft.finetuning_type == "lora":
        raise ConfigError("galore_badam_with_lora", method="GaLore" if ft.use_galore else "BAdam")
    if ft.use_galore and ft.galore_layerwise and train.gradient_accumulation_steps != 1:
        raise ConfigError("galore_layerwise_accumulation", steps=train.gradient_accumulation_steps)
    if train.deepspeed and not Path(train.deepspeed).is_file():
        raise ConfigError("deepspeed_config_missing", path=train.deepspeed)
    if train.output_dir and Path(train.output_dir).exists() and not Path(train.output_dir).is_dir():
        raise ConfigError("output_dir_is_file", path=train.output_dir)


def check_stage(config: RunConfig) -> None:
    """The stage is one this engine can run."""
    from engine.train import STAGES

    if config.finetuning.stage not in STAGES:
        raise ConfigError("stage_not_available", stage=config.finetuning.stage, available=", ".join(STAGES))


def check_datasets(config: RunConfig) -> None:
    """Dataset names are registered and fit the stage (no files are read)."""
    from engine.data import dataset_kind, get_dataset_attrs

    data, stage = config.data, config.finetuning.stage
    saved_tokens = bool(data.tokenized_path) and Path(data.tokenized_path).is_dir()
    if config.training.do_train and not data.dataset and not saved_tokens:
        raise ConfigError("no_dataset", key=Setting("dataset"))
    if config.training.do_predict and not config.training.do_train and not (data.eval_dataset or data.dataset):
        raise ConfigError("no_predict_dataset", key=Setting("eval_dataset"))
    needed = STAGE_DATASET_KINDS.get(stage)
    for names in (data.dataset, data.eval_dataset):
        if not names:
            continue
        for attr in get_dataset_attrs(names, data.dataset_dir):
            kind = dataset_kind(attr)
            if needed and kind != needed:
                raise ConfigError(f"stage_needs_{needed}", name=attr.name, stage=stage)
            # Pre-training reads any text but pairs; SFT would learn the undesirable replies of KTO data too.
            if (stage == "pt" and kind == "ranking") or (stage == "sft" and kind != "sft"):
                raise ConfigError("dataset_stage_mismatch", name=attr.name, kind=kind, stage=stage)


def check_preference(config: RunConfig) -> None:
    """Preference settings that TRL cannot honour, caught before anything loads."""
    ft, train = config.finetuning, config.training
    if ft.stage == "dpo" and ft.pref_loss in UNAVAILABLE_PREF_LOSSES:
        usable = ", ".join(loss for loss in PREF_LOSSES if loss not in UNAVAILABLE_PREF_LOSSES)
        raise ConfigError("pref_loss_unavailable", loss=ft.pref_loss, choices=usable)
    if ft.stage == "dpo" and ft.dpo_label_smoothing > 0 and ft.pref_loss not in ("sigmoid", "simpo"):
        raise ConfigError("label_smoothing_unsupported", value=ft.dpo_label_smoothing, loss=ft.pref_loss)
    # KTO pairs each reply with another from its batch: batch 1 runs as 2 with half the accumulation (see kto.py).
    if ft.stage == "kto" and train.do_train and train.per_device_train_batch_size * train.gradient_accumulation_steps < 2:
        raise ConfigError("kto_batch_size", value=train.per_device_train_batch_size)
    ref = ft.ref_model if ft.stage in ("dpo", "kto") else None
    if ref and looks_like_local_path(ref) and not Path(ref).expanduser().exists():
        raise ConfigError("model_path_missing", path=ref)


def check_rl(config: RunConfig) -> None:
    """PPO and GRPO need a known reward; PPO's reference is the model without its LoRA adapter."""
    from engine.train.rewards import compile_format_pattern, parse_reward_funcs

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


def validate_config(config: RunConfig, command: str = "train") -> RunConfig:
    """Run every check that needs no model and no dataset rows; raise the first problem found."""
    check_field_ranges(config)
    check_unsupported(config)
    check_model(config)
    if command == "train":
        check_stage(config)
        check_training(config)
        check_datasets(config)
        check_preference(config)
        check_rl(config)
    return config
