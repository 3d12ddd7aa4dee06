"""The config keys a public demo visitor may set: an allow-list, so that a key added to the engine later is refused
until someone decides it is safe (deny by default).

Every other key must keep the engine's default value. Old names (`ALIASES`) are read as the key they stand for
before anything is checked, so an alias cannot slip past a rule or a budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.config import config_from_dict, field_hints
from engine.config.fields import coerce_value
from engine.config.loader import ALIASES, KEYS
from engine.errors import Setting, StudioError

# What the Train, Evaluate, Chat and Export tabs send for the allowed models (hyper-parameters, method and stage
# settings, sampling), plus the harmless neighbours a user types into Extra arguments. Any value the engine
# accepts is fine here: the work they cause is bounded by the budgets in `studio.demo_budgets`.
VALUE_KEYS = frozenset({
    # model and top bar
    "template", "finetuning_type", "quantization_bit", "quantization_method", "rope_scaling", "flash_attn",
    "use_unsloth", "enable_liger_kernel", "resize_vocab", "infer_backend", "infer_dtype", "use_fast_tokenizer",
    # data
    "stage", "dataset", "eval_dataset", "cutoff_len", "max_samples", "val_size", "packing", "neat_packing",
    "train_on_prompt", "mask_history", "overwrite_cache", "identity_name", "identity_author", "default_system",
    "enable_thinking", "tool_format", "mix_strategy",
    # training
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "per_device_eval_batch_size",
    "gradient_accumulation_steps", "max_grad_norm", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon",
    "lr_scheduler_type", "warmup_steps", "warmup_ratio", "logging_steps", "logging_first_step", "save_steps",
    "save_strategy", "save_only_model", "eval_strategy", "eval_steps", "load_best_model_at_end",
    "metric_for_best_model", "greater_is_better", "early_stopping_patience", "bf16", "fp16", "pure_bf16", "seed",
    "data_seed", "overwrite_output_dir", "do_train", "do_eval", "do_predict", "predict_with_generate",
    "gradient_checkpointing", "use_cpu", "plot_loss", "run_name", "neftune_noise_alpha", "compute_accuracy",
    "include_num_input_tokens_seen", "include_effective_tokens_per_second",
    # methods: LoRA, freeze, GaLore, BAdam
    "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "additional_target", "loraplus_lr_ratio",
    "loraplus_lr_embedding", "use_rslora", "use_dora", "pissa_init", "pissa_iter", "create_new_adapter",
    "freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules",
    "use_galore", "galore_rank", "galore_update_interval", "galore_scale", "galore_target", "galore_proj_type",
    "use_badam", "badam_mode", "badam_switch_mode", "badam_switch_interval", "badam_update_ratio",
    # methods: OFT, LLaMA Pro; optimizers: APOLLO, Adam-mini, Muon; SFT losses
    "oft_rank", "oft_block_size", "oft_target", "module_dropout", "use_llama_pro",
    "use_apollo", "apollo_rank", "apollo_update_interval", "apollo_scale", "apollo_target", "apollo_proj",
    "apollo_proj_type", "apollo_scale_type", "apollo_layerwise", "apollo_scale_front", "use_adam_mini", "use_muon",
    "use_dft_loss", "use_asft_loss", "asft_alpha", "use_eaft_loss", "eaft_alpha",
    "early_stopping_steps", "preserve_thinking", "init_special_tokens", "pref_bco_weight", "ld_alpha",
    # media models: which parts train, how often video frames are taken (how many: AT_MOST_DEFAULT)
    "freeze_vision_tower", "freeze_multi_modal_projector", "freeze_language_model", "video_fps",
    # SwanLab's names and mode do nothing while use_swanlab stays off (see CHOICES)
    "swanlab_project", "swanlab_workspace", "swanlab_run_name", "swanlab_mode",
    # stages: preference and reinforcement learning
    "pref_beta", "pref_ftx", "pref_loss", "dpo_label_smoothing", "simpo_gamma", "kto_chosen_weight",
    "kto_rejected_weight", "reward_model_type", "reward_funcs", "num_generations", "max_completion_length",
    "grpo_beta", "ppo_epochs", "ppo_buffer_size", "ppo_kl_coef", "ppo_gamma", "ppo_lam", "ppo_cliprange",
    "ppo_cliprange_value", "ppo_vf_coef", "ppo_score_norm", "ppo_whiten_rewards", "ppo_target",
    # generation (chat, predictions)
    "do_sample", "temperature", "top_p", "top_k", "max_new_tokens", "repetition_penalty", "length_penalty",
    "skip_special_tokens",
    # evaluation and export
    "task", "n_shot", "lang", "batch_size", "export_size", "export_device", "export_legacy_format", "export_gguf",
    "export_parity", "export_ollama", "export_quantization_bit",
    # the judge of predictions: its endpoint must also be on the demo's own list (`demo_mode`); its key stays the
    # host's (judge_api_key_env and judge_api_key keep their defaults)
    "judge_base_url", "judge_model", "judge_rubric", "judge_scale_min", "judge_scale_max", "judge_max_samples",
    "judge_concurrency", "judge_temperature", "judge_max_tokens", "judge_timeout", "judge_retries",
})

# Allowed keys whose values the demo narrows further than the engine does. Other trackers would log a visitor's
# run to the host's own account (their credentials are in the studio's environment).
CHOICES: dict[str, tuple[Any, ...]] = {"report_to": ("none", "tensorboard"), "use_swanlab": (False,)}

# Allowed numbers bounded by a DemoSettings field (checked in `studio.demo_budgets`).
CAPPED: dict[str, str] = {"dataloader_num_workers": "max_workers", "preprocessing_num_workers": "max_workers",
                          "save_total_limit": "max_checkpoints"}

# Allowed media sizes a visitor may lower but not raise above the engine's defaults (LLaMA-Factory's, ample for the
# demo's small models): every image and video frame is decoded and scaled to them before its tokens are counted
# against cutoff_len, so a huge minimum would enlarge each tiny image to that size first (checked in
# `studio.demo_budgets`).
AT_MOST_DEFAULT = frozenset({"image_max_pixels", "image_min_pixels", "video_max_pixels", "video_min_pixels",
                             "video_maxlen", "audio_sampling_rate"})

# Keys naming files, folders or models, and how `studio.demo_paths` confines each: `write` inside the workspace;
# `read` inside the workspace or the shipped read-only folders; `workspace` inside the workspace only (the shipped
# dataset registry also lists hub datasets); `shipped` inside the shipped folders only (a DeepSpeed file can name
# offload paths anywhere); `model` an allow-listed model or one of the visitor's runs; `adapters` runs of the
# visitor, comma-separated; `checkpoint` true/false or a run of the visitor.
PATH_ROLES: dict[str, str] = {
    "output_dir": "write", "export_dir": "write", "save_dir": "write", "tokenized_path": "write",
    "logging_dir": "write", "offload_folder": "write", "cache_dir": "write",
    "dataset_dir": "workspace", "media_dir": "read", "task_dir": "read", "export_quantization_dataset": "read",
    "judge_predictions": "workspace",
    "new_special_tokens_config": "read",
    "deepspeed": "shipped", "fsdp_config": "shipped",
    "model_name_or_path": "model", "ref_model": "model", "reward_model": "model",
    "adapter_name_or_path": "adapters", "ref_model_adapters": "adapters", "reward_model_adapters": "adapters",
    "adapter_folder": "adapters", "compare_with": "adapters", "resume_from_checkpoint": "checkpoint",
}
# Path keys that stay at their default: a per-visitor model cache or offload folder would copy gigabytes per
# visitor; FSDP and adapter folders are not needed for the demo's small models.
_FIXED_PATHS = frozenset({"offload_folder", "cache_dir", "fsdp_config", "adapter_folder"})

ALLOWED = VALUE_KEYS | CHOICES.keys() | CAPPED.keys() | AT_MOST_DEFAULT | (PATH_ROLES.keys() - _FIXED_PATHS)


def canonical_keys(config: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with old key names replaced by the key they stand for (a later entry wins, as in the engine).

    An unknown key is refused with the engine's own message, which suggests the nearest valid key.
    """
    result: dict[str, Any] = {}
    for key, value in config.items():
        name = ALIASES.get(str(key), str(key))
        if name not in KEYS:
            config_from_dict({name: value}, source="the studio settings")
            # A transformers argument passed through, or a LLaMA-Factory feature not built: never on the allow-list.
            raise StudioError("demo_key_not_allowed", setting=Setting(name))
        result[name] = value
    return result


def default_of(key: str) -> Any:
    """The engine's default for `key`."""
    _, cls, _ = KEYS[key]
    return field_hints(cls, key)["default"]


def typed_value(config: Mapping[str, Any], key: str) -> Any:
    """The value of `key` as the engine reads it (its type, or its default when missing)."""
    if key not in config:
        return default_of(key)
    return coerce_value(key, config[key], KEYS[key][2])


def check_allowed(config: Mapping[str, Any]) -> None:
    """Refuse any key off the allow-list whose value differs from the engine's default, and narrowed choices."""
    for key in config:
        if key in CHOICES and typed_value(config, key) not in CHOICES[key]:
            raise StudioError("demo_value_not_allowed", setting=Setting(key),
                              value=str(config[key]), allowed=", ".join(map(str, CHOICES[key])))
        if key not in ALLOWED and typed_value(config, key) != default_of(key):
            raise StudioError("demo_key_not_allowed", setting=Setting(key))
