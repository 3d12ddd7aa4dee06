"""The registry of well-known models: entries are well-formed, the demo comes first, lookups go both ways."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from engine.config import config_from_dict, known_keys
from engine.model.families import (
    CUSTOM,
    DEMO,
    MODELS,
    get_model,
    list_models,
    model_path,
    register_model,
    template_for,
)
from engine.templates import list_templates

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def test_demo_comes_first_and_is_offline():
    assert list_models()[0] == DEMO
    demo = get_model(DEMO)
    assert demo.hf is None and demo.ms is None
    assert demo.template == "chatml" and demo.family == "demo"
    assert model_path(DEMO) == "demo" and model_path(DEMO, "modelscope") == "demo"
    assert demo.recommended == {
        "finetuning_type": "lora", "dataset": "identity", "learning_rate": 5e-3, "num_train_epochs": 30,
        "lora_rank": 16, "lora_target": "all", "cutoff_len": 256, "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1, "lr_scheduler_type": "cosine", "warmup_ratio": 0.05, "logging_steps": 5,
    }


def test_every_model_recommends_the_same_training_keys():
    # Choosing a model replaces what the previous one set: a hub model must not inherit the demo's 30 epochs.
    demo_keys = set(get_model(DEMO).recommended) - {"dataset"}
    for name in list_models():
        assert set(get_model(name).recommended) - {"dataset"} == demo_keys, name
    qwen = get_model("Qwen2.5-7B-Instruct").recommended
    assert qwen["learning_rate"] == 1e-4 and qwen["num_train_epochs"] == 3.0
    assert qwen["per_device_train_batch_size"] * qwen["gradient_accumulation_steps"] == 8


def test_hub_models_know_their_size():
    for name in list_models():
        info = get_model(name)
        assert (info.params is None) == (info.hf is None), name
    assert get_model("Qwen2.5-7B-Instruct").params == 7
    assert get_model("SmolLM2-135M-Instruct").params == pytest.approx(0.135)
    assert get_model("Qwen3-30B-A3B").params == 30  # all experts are in memory
    assert get_model("Mixtral-8x7B-Instruct-v0.1").params == 47
    with pytest.raises(ValueError, match="size"):
        register_model("Sizeless", hf="org/sizeless", template="chatml", family="test")
    assert "Sizeless" not in MODELS


def test_registry_has_the_well_known_families():
    assert len(list_models()) >= 50
    families = {get_model(name).family for name in list_models()}
    assert {"qwen", "llama", "mistral", "gemma", "phi", "glm", "deepseek", "yi", "baichuan", "internlm", "cohere",
            "falcon", "zephyr", "vicuna", "smollm", "tinyllama"} <= families


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_is_well_formed(name: str):
    info = get_model(name)
    assert info.name == name and name != CUSTOM
    assert info.template in list_templates()
    if name != DEMO:
        assert info.hf and HUB_ID.match(info.hf), info.hf
    if info.ms is not None:
        assert HUB_ID.match(info.ms), info.ms
    assert set(info.recommended) <= set(known_keys())


def test_names_and_hub_ids_are_unique():
    names = list_models()
    assert len(names) == len(set(names))
    hf_ids = [get_model(n).hf.lower() for n in names if get_model(n).hf]
    assert len(hf_ids) == len(set(hf_ids))


def test_recommended_values_make_a_valid_config():
    for name in list_models():
        config_from_dict({"model_name_or_path": model_path(name), **get_model(name).recommended})


def test_model_path_per_hub():
    assert model_path("Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert model_path("Llama-3.1-8B-Instruct", "modelscope") == "LLM-Research/Meta-Llama-3.1-8B-Instruct"
    assert model_path("Llama-3.1-8B-Instruct", "huggingface") == "meta-llama/Llama-3.1-8B-Instruct"
    no_ms = next(n for n in list_models() if get_model(n).hf and not get_model(n).ms)
    assert model_path(no_ms, "modelscope") == get_model(no_ms).hf  # falls back to the HF id


def test_template_for_names_and_ids():
    assert template_for("Qwen3-8B") == "qwen3"
    assert template_for("Qwen/Qwen3-8B") == "qwen3"
    assert template_for("qwen/qwen2.5-7b-instruct/") == "qwen"
    assert template_for("LLM-Research/Meta-Llama-3-8B-Instruct") == "llama3"
    assert template_for("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") == "deepseek3"
    assert template_for("TinyLlama/TinyLlama-1.1B-Chat-v1.0") == "zephyr"
    assert template_for("microsoft/phi-4") == "phi4"
    assert template_for("demo") == "chatml"
    assert template_for("/data/models/my-model") is None
    assert template_for(CUSTOM) is None and template_for("") is None and template_for(None) is None


def test_unknown_and_duplicate_names():
    with pytest.raises(KeyError, match="unknown model"):
        get_model("No-Such-Model")
    with pytest.raises(ValueError, match="already registered"):
        register_model(DEMO, hf=None, template="chatml", family="demo")
    with pytest.raises(ValueError, match="unknown template"):
        register_model("Test-Model-X", hf="org/x", template="no_such_template", family="test")
    assert "Test-Model-X" not in MODELS


def test_import_leaves_heavy_libraries_out():
    code = "import sys, engine.model.families; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert not {"torch", "transformers", "peft", "trl", "datasets", "gradio"} & loaded
