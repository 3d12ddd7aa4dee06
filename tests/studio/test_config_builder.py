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
                  identity_name="Studio Assistant", identity_author="the Studio team", strategy="auto",
                  offload_optimizer=False, offload_params=False, devices=[], cpu_processes=1, run_name="my_run",
                  reward_model=None)
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


def test_oft_gives_its_settings_and_continues_from_adapters(studio_home):
    config, run_dir = build_train_config(form(finetuning_type="oft", oft_block_size=16.0, oft_rank=0.0,
                                              module_dropout=0.1, oft_target="q_proj,v_proj",
                                              checkpoint=["old_oft"]))
    assert run_dir == studio_home / "saves" / "demo" / "oft" / "my_run"
    assert config["finetuning_type"] == "oft" and config["oft_block_size"] == 16 and config["oft_rank"] == 0
    assert config["module_dropout"] == 0.1 and config["oft_target"] == "q_proj,v_proj"
    assert config["adapter_name_or_path"].endswith("saves/demo/oft/old_oft")  # an OFT run is an adapter
    parsed = config_from_dict(config)
    assert parsed.finetuning.oft_block_size == 16 and parsed.finetuning.finetuning_type == "oft"
    validate_config(config_from_dict(build_train_config(form(finetuning_type="oft"))[0]))  # OFT's defaults run


def test_new_method_settings_reach_the_config(studio_home):
    config, _ = build_train_config(form(
        finetuning_type="full", use_apollo=True, apollo_rank=32.0, apollo_proj="svd", apollo_scale_type="tensor",
        use_adam_mini=False, use_muon=False, use_dft_loss=False, use_eaft_loss=True, eaft_alpha=0.5,
        use_llama_pro=True, preserve_thinking=True, init_special_tokens="desc_init", pref_bco_weight=0.5,
        use_swanlab=True, swanlab_mode="local", swanlab_project="mine", swanlab_workspace=""))
    parsed = config_from_dict(config)
    ft = parsed.finetuning
    assert ft.use_apollo and ft.apollo_rank == 32 and ft.apollo_proj == "svd" and ft.apollo_scale_type == "tensor"
    assert not ft.use_muon and not ft.use_adam_mini and ft.use_eaft_loss and ft.eaft_alpha == 0.5
    assert ft.use_llama_pro and ft.pref_bco_weight == 0.5
    assert ft.use_swanlab and ft.swanlab_mode == "local" and ft.swanlab_project == "mine"
    assert ft.swanlab_workspace is None  # an empty box: SwanLab's default (your own)
    assert parsed.data.preserve_thinking and parsed.model.init_special_tokens == "desc_init"


def test_optional_numbers_of_new_settings_map_zero_to_off(studio_home):
    config, _ = build_train_config(form(early_stopping_steps=0.0, ld_alpha=0.0, new_special_tokens_config=""))
    assert config["early_stopping_steps"] is None and config["ld_alpha"] is None
    assert config["new_special_tokens_config"] is None
    config, _ = build_train_config(form(early_stopping_steps=3.0, ld_alpha=0.5))
    assert config["early_stopping_steps"] == 3 and config["ld_alpha"] == 0.5


def test_no_secret_travels_in_the_form():
    """Save settings writes the form to a file and Preview shows the config built from it: secrets (API keys,
    tokens) must never be among its fields. A SwanLab key comes from `swanlab login` or SWANLAB_API_KEY."""
    from engine.config import field_hints
    from engine.config.loader import KEYS
    from studio.tabs.train import FORM_FIELDS

    secrets = {name for name in FORM_FIELDS if name in KEYS and field_hints(KEYS[name][1], name).get("secret")}
    assert not secrets
    assert "swanlab_api_key" not in FORM_FIELDS


def test_groups_follow_the_method_and_the_stage():
    from studio.tabs.train import group_visibility

    shown = group_visibility("oft", "sft")
    assert shown["oft"] and not shown["lora"] and shown["sft_loss"] and not shown["rlhf"]
    assert not shown["use_apollo"] and not shown["apollo"] and not shown["use_adam_mini"]  # whole weights only
    shown = group_visibility("full", "dpo")
    assert shown["use_apollo"] and shown["apollo"] and shown["use_adam_mini"] and shown["galore"]
    assert shown["rlhf"] and not shown["sft_loss"] and not shown["oft"]
    assert "optimizers" not in shown and "use_muon" not in shown  # always shown: Muon works with every method


def test_predictions_take_a_beam_width(studio_home):
    from studio.tabs.evaluate import build_eval_config

    values = ["predict", "Demo (offline)", "demo", "lora", [], "chatml", "none", "", 0, "en", False, ["identity"],
              "data", 256, 10, 2, 32, 1.0, 0.0]
    config, _ = build_eval_config(*values, 4.0)
    assert config["eval_num_beams"] == 4
    config, _ = build_eval_config(*values, 0)
    assert config["eval_num_beams"] is None  # the box's 0: the engine's default (num_beams)
    assert config_from_dict(config).data.eval_num_beams is None


@pytest.mark.parametrize("strategy", ["auto", "ddp", "zero2", "zero3", "fsdp2"])
@pytest.mark.parametrize("offload_optimizer", [False, True])
@pytest.mark.parametrize("offload_params", [False, True])
def test_strategy_maps_both_ways(strategy, offload_optimizer, offload_params, studio_home):
    from studio.tabs.train import offload_visibility
    from studio.widgets import strategy_from_config, strategy_to_config

    config = strategy_to_config(strategy, offload_optimizer, offload_params)
    optimizer_box, params_box = offload_visibility(strategy)
    # Back from the config: the same choice, with the boxes that apply to it (auto and DDP write the same config).
    expected = ("auto" if strategy == "ddp" else strategy, offload_optimizer and optimizer_box,
                offload_params and params_box)
    assert strategy_from_config(config) == expected
    assert strategy_to_config(*strategy_from_config(config)) == config  # config → widget → config is the identity
    built, _ = build_train_config(form(strategy=strategy, offload_optimizer=offload_optimizer,
                                       offload_params=offload_params))
    assert built["deepspeed"] == config["deepspeed"] and built["fsdp"] == config["fsdp"]
    assert not {"strategy", "offload_optimizer", "offload_params", "devices", "cpu_processes"} & built.keys()
    if strategy.startswith("zero"):
        assert f"ds_z{strategy[-1]}_" in config["deepspeed"]
    else:
        assert config["deepspeed"] is None
        parsed = config_from_dict(built)
        assert parsed.training.fsdp == config["fsdp"]
        if strategy != "fsdp2":  # FSDP needs a GPU: refused before training on this machine (tests/engine/test_fsdp)
            validate_config(parsed)


def test_fsdp2_asks_for_a_full_shard(studio_home):
    from studio.widgets import strategy_to_config

    assert strategy_to_config("fsdp2") == {"deepspeed": None, "fsdp": "full_shard auto_wrap"}
    assert strategy_to_config("fsdp2", offload_params=True)["fsdp"] == "full_shard auto_wrap offload"


def test_shipped_deepspeed_files_are_the_generated_ones():
    """Every ZeRO stage and offload the widget offers has its file in examples/deepspeed, and the file holds what
    `deepspeed_settings` generates (stage, offload entries, `auto` sizes for the Trainer to fill in)."""
    import json
    from pathlib import Path

    from studio.widgets import DEEPSPEED_FILES, deepspeed_settings, strategy_to_config

    for (stage, optimizer, params), name in DEEPSPEED_FILES.items():
        path = Path(strategy_to_config(f"zero{stage}", optimizer, params)["deepspeed"])
        assert path.name == name and path.is_file()
        written = json.loads(path.read_text(encoding="utf-8"))
        assert written == deepspeed_settings(stage, optimizer, params)
        zero = written["zero_optimization"]
        assert zero["stage"] == stage
        assert ("offload_optimizer" in zero) == optimizer and ("offload_param" in zero) == params
        assert written["train_micro_batch_size_per_gpu"] == "auto"


def test_a_deepspeed_file_of_ones_own_reads_as_its_stage(tmp_path):
    import json

    from studio.widgets import deepspeed_settings, strategy_from_config

    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps(deepspeed_settings(3, True, False)))
    assert strategy_from_config({"deepspeed": str(mine)}) == ("zero3", True, False)
    assert strategy_from_config({"deepspeed": str(tmp_path / "gone.json")}) == ("zero2", False, False)
    assert strategy_from_config({"fsdp": "shard_grad_op"}) == ("fsdp2", False, False)


def test_launch_env_sets_the_process_count():
    from studio.widgets import launch_env

    # A machine without GPUs: the CPU processes box (DDP over gloo).
    assert launch_env(form(cpu_processes=1), gpu_count=0) == {}
    assert launch_env(form(cpu_processes=2.0), gpu_count=0) == {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}
    # GPUs: one process per chosen GPU (CUDA_VISIBLE_DEVICES is the launcher's); none chosen: the engine decides.
    assert launch_env(form(devices=["0", "2"], cpu_processes=4), gpu_count=4) == {"FORCE_TORCHRUN": "1",
                                                                                 "NPROC_PER_NODE": "2"}
    assert launch_env(form(devices=["1"]), gpu_count=4) == {}
    assert launch_env(form(devices=[]), gpu_count=4) == {}


def test_gpu_labels_name_the_card_and_its_memory(monkeypatch):
    from studio import capabilities

    monkeypatch.setattr(capabilities, "device_count", lambda: 2)
    monkeypatch.setattr(capabilities, "_gpus_named_by_nvidia_smi",
                        lambda: [("NVIDIA H100 80GB HBM3", 81559 / 1024), ("NVIDIA H100 80GB HBM3", 81559 / 1024)])
    gpus = capabilities.gpu_list()
    assert [gpu["index"] for gpu in gpus] == ["0", "1"]
    assert capabilities.gpu_label(gpus[0]) == "GPU 0 · NVIDIA H100 80GB HBM3 · 80 GB"
    monkeypatch.setattr(capabilities, "_gpus_named_by_nvidia_smi", lambda: [])  # GPUs seen only under /proc
    assert [capabilities.gpu_label(gpu) for gpu in capabilities.gpu_list()] == ["GPU 0", "GPU 1"]


def test_extra_settings_win_over_the_continue_from_picker(studio_home):
    config, _ = build_train_config(form(extra_args='{"adapter_name_or_path": "saves/demo/lora/other"}'))
    assert config["adapter_name_or_path"] == "saves/demo/lora/other"
