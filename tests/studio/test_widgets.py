"""Composite widgets ↔ config fields: every choice survives the round trip, and configs map to the right choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import config_from_dict
from engine.model.families import CUSTOM, DEMO, list_models, model_path
from studio.widgets import (
    BOOSTERS,
    COMPUTE_TYPES,
    QUANTIZATION_BITS,
    booster_from_config,
    booster_to_config,
    checkpoint_from_config,
    checkpoint_to_config,
    compute_type_from_config,
    compute_type_to_config,
    model_from_config,
    model_to_config,
    quantization_from_config,
    quantization_to_config,
    runs_dir,
)


@pytest.mark.parametrize("booster", BOOSTERS)
def test_booster_round_trip(booster: str):
    config = booster_to_config(booster)
    assert booster_from_config(config) == booster
    config_from_dict(config)  # the engine accepts the values


def test_booster_values():
    assert booster_to_config("flashattn2") == {"flash_attn": "fa2", "use_unsloth": False, "enable_liger_kernel": False}
    assert booster_to_config("unsloth")["use_unsloth"] is True
    assert booster_to_config("liger_kernel")["enable_liger_kernel"] is True
    assert booster_from_config({}) == "auto"
    assert booster_from_config({"flash_attn": "fa3"}) == "auto"
    assert booster_from_config({"use_unsloth": "true", "flash_attn": "fa2"}) == "unsloth"
    with pytest.raises(ValueError, match="unknown booster"):
        booster_to_config("turbo")


@pytest.mark.parametrize("compute_type", COMPUTE_TYPES)
def test_compute_type_round_trip(compute_type: str):
    config = compute_type_to_config(compute_type)
    assert compute_type_from_config(config) == compute_type
    assert sum(config.values()) == (compute_type != "fp32")


def test_compute_type_from_loose_configs():
    assert compute_type_from_config({}) == "fp32"
    assert compute_type_from_config({"bf16": True, "pure_bf16": True}) == "pure_bf16"
    assert compute_type_from_config({"fp16": "yes"}) == "fp16"


@pytest.mark.parametrize("bits", QUANTIZATION_BITS)
def test_quantization_round_trip(bits: str):
    config = quantization_to_config(bits)
    assert quantization_from_config(config) == bits
    assert config_from_dict(config).model.quantization_bit == config["quantization_bit"]


def test_quantization_values():
    assert quantization_to_config("none") == {"quantization_bit": None}
    assert quantization_to_config(4) == {"quantization_bit": 4}
    assert quantization_to_config(None) == {"quantization_bit": None}
    assert quantization_from_config({"quantization_bit": 8}) == "8"
    with pytest.raises(ValueError):
        quantization_to_config("3")


@pytest.mark.parametrize("hub", ["huggingface", "modelscope"])
@pytest.mark.parametrize("name", list_models())
def test_model_round_trip(name: str, hub: str):
    config = model_to_config(name, hub)
    assert config == {"model_name_or_path": model_path(name, hub)}
    back_name, back_hub, custom = model_from_config(config, hub)
    assert back_name == name and custom == ""
    assert model_to_config(back_name, back_hub) == config


def test_model_hub_is_found_from_the_id():
    # an id that lives only on ModelScope reads back as ModelScope, even when the UI says Hugging Face
    assert model_from_config({"model_name_or_path": "LLM-Research/Meta-Llama-3.1-8B-Instruct"}) == (
        "Llama-3.1-8B-Instruct", "modelscope", "")
    assert model_from_config({"model_name_or_path": "meta-llama/llama-3.1-8b-instruct"}, "modelscope") == (
        "Llama-3.1-8B-Instruct", "huggingface", "")
    assert model_from_config({"model_name_or_path": "demo"}) == (DEMO, "huggingface", "")


def test_custom_model_round_trip():
    config = model_to_config(CUSTOM, "huggingface", "  /data/models/my-llama ")
    assert config == {"model_name_or_path": "/data/models/my-llama"}
    assert model_from_config(config) == (CUSTOM, "huggingface", "/data/models/my-llama")
    assert model_from_config({"model_name_or_path": "org/unknown-model"}, "modelscope") == (
        CUSTOM, "modelscope", "org/unknown-model")
    assert model_from_config({}) == (CUSTOM, "huggingface", "")
    # a name typed into the dropdown that is not registered is taken as the path
    assert model_to_config("org/typed-in") == {"model_name_or_path": "org/typed-in"}


def test_lora_checkpoints_round_trip(studio_home: Path):
    runs = ["train_1", "train_2"]
    config = checkpoint_to_config(runs, "Qwen2.5-7B-Instruct", "lora")
    folder = runs_dir("Qwen2.5-7B-Instruct", "lora")
    assert config == {"adapter_name_or_path": f"{folder / 'train_1'},{folder / 'train_2'}"}
    assert folder == studio_home / "saves" / "Qwen2.5-7B-Instruct" / "lora"
    assert checkpoint_from_config(config, "Qwen2.5-7B-Instruct", "lora") == runs
    assert checkpoint_to_config([], "demo", "lora") == {"adapter_name_or_path": None}
    assert checkpoint_from_config({"adapter_name_or_path": None}, "demo", "lora") == []


def test_checkpoints_use_the_studio_run_folders(studio_home: Path):
    from studio.runs import run_folder

    config = checkpoint_to_config(["train_1"], DEMO, "lora")
    assert config == {"adapter_name_or_path": str(run_folder(DEMO, "lora", "train_1"))}
    assert checkpoint_from_config(config, DEMO, "lora") == ["train_1"]


def test_lora_checkpoints_keep_other_folders_and_read_relative_paths(studio_home: Path):
    config = checkpoint_to_config(["train_1", "/elsewhere/adapter"], "demo", "lora")
    assert checkpoint_from_config(config, "demo", "lora") == ["train_1", "/elsewhere/adapter"]
    relative = {"adapter_name_or_path": "saves/demo/lora/train_3, saves/other/lora/train_4"}
    assert checkpoint_from_config(relative, "demo", "lora") == ["train_3", "saves/other/lora/train_4"]
    # another model's runs are not this model's
    assert checkpoint_from_config(config, "other", "lora") == [str(runs_dir("demo", "lora") / "train_1"),
                                                               "/elsewhere/adapter"]


@pytest.mark.parametrize("method", ["full", "freeze"])
def test_full_and_freeze_checkpoint_round_trip(studio_home: Path, method: str):
    config = checkpoint_to_config(["train_1"], "demo", method)
    assert config == {"adapter_name_or_path": None, "model_name_or_path": str(runs_dir("demo", method) / "train_1")}
    assert checkpoint_from_config(config, "demo", method) == ["train_1"]
    assert checkpoint_to_config("train_1", "demo", method) == config
    # no run chosen: the base model stays what the model widgets say
    assert checkpoint_to_config([], "demo", method) == {"adapter_name_or_path": None}
    assert checkpoint_from_config({"model_name_or_path": "demo"}, "demo", method) == []
    assert checkpoint_from_config({"model_name_or_path": "Qwen/Qwen3-8B"}, "demo", method) == []
    with pytest.raises(ValueError, match="one run"):
        checkpoint_to_config(["a", "b"], "demo", method)


def test_import_leaves_heavy_libraries_out():
    code = ("import sys, studio.widgets as w; w.checkpoint_to_config(['r'], 'm', 'lora'); w.model_from_config({}); "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert not {"torch", "transformers", "peft", "trl", "datasets", "gradio"} & loaded
