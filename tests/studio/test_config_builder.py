"""The Train form's values → engine config: composites, blanks, extra JSON, and the engine's own validation."""

from __future__ import annotations

import pytest

from engine.config import config_from_dict
from engine.errors import StudioError
from engine.validation import validate_config
from studio.config_builder import build_train_config


def form(**changes):
    from engine.config.loader import KEYS
    from studio.components import field_default
    from studio.tabs.train import FORM_FIELDS

    values = {name: field_default(name) if name in KEYS else None for name in FORM_FIELDS}
    values.update(model_name="Demo (offline)", model_path="demo", hub="huggingface", finetuning_type="lora",
                  checkpoint=[], quantization_bit="none", quantization_method="bnb", template="chatml",
                  rope_scaling="none", booster="auto", stage="sft", dataset_dir="data", dataset=["identity"],
                  learning_rate=5e-3, num_train_epochs=30.0, max_grad_norm=1.0, max_samples=0, compute_type="fp32",
                  cutoff_len=256.0, per_device_train_batch_size=8.0, gradient_accumulation_steps=1.0, val_size=0.0,
                  lr_scheduler_type="cosine", logging_steps=5.0, save_steps=500.0, warmup_steps=0.0,
                  neftune_noise_alpha=0.0, report_to="none", packing=False, train_on_prompt=False,
                  mask_history=False, resize_vocab=False, extra_args="{}", lora_rank=16.0, lora_alpha=0.0,
                  lora_dropout=0.0, loraplus_lr_ratio=0.0, lora_target="all", additional_target="",
                  identity_name="Studio Assistant", identity_author="the Studio team", ds_stage="none",
                  ds_offload=False, run_name="my_run", reward_model=None)
    values.update(changes)
    return values


def test_defaults_build_a_valid_config(studio_home):
    config, run_dir = build_train_config(form())
    assert run_dir == studio_home / "saves" / "demo" / "lora" / "my_run"
    assert config["model_name_or_path"] == "demo" and config["dataset"] == "identity"
    assert config["max_samples"] is None and config["lora_alpha"] is None and config["neftune_noise_alpha"] is None
    assert config["quantization_bit"] is None and config["rope_scaling"] is None
    assert config["flash_attn"] == "auto" and config["bf16"] is False
    validate_config(config_from_dict(config))


def test_composites(studio_home):
    config, _ = build_train_config(form(quantization_bit="4", compute_type="bf16", booster="sdpa",
                                        rope_scaling="linear", checkpoint=["old_run"]))
    assert config["quantization_bit"] == 4 and config["bf16"] is True and config["flash_attn"] == "sdpa"
    assert config["rope_scaling"] == "linear"
    assert config["adapter_name_or_path"].endswith("saves/demo/lora/old_run")


def test_extra_args_are_merged_and_checked(studio_home):
    config, _ = build_train_config(form(extra_args='{"weight_decay": 0.01}'))
    assert config["weight_decay"] == 0.01
    with pytest.raises(StudioError) as info:
        build_train_config(form(extra_args='{"weight_decay": 0.01'))
    assert info.value.key == "extra_args_invalid"
    with pytest.raises(StudioError) as info:
        build_train_config(form(extra_args="[1, 2]"))
    assert info.value.key == "extra_args_not_object"
    config, _ = build_train_config(form(extra_args='{"learning_rat": 1}'))
    with pytest.raises(StudioError) as info:
        config_from_dict(config)
    assert info.value.key == "unknown_key" and "learning_rate" in str(info.value)


def test_run_name_with_dots_is_refused(studio_home):
    with pytest.raises(StudioError):
        build_train_config(form(run_name="../../etc"))


def test_max_steps_zero_means_all_epochs(studio_home):
    config, _ = build_train_config(form(max_steps=0))  # the Train tab shows 0 for "off"
    assert config["max_steps"] == -1
    validate_config(config_from_dict(config))
    assert build_train_config(form(max_steps=20.0))[0]["max_steps"] == 20
