"""The registry of well-known models: entries are well-formed, the demo comes first, families stay together and
name their entries in the picker, lookups go both ways."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from itertools import groupby

import pytest

import engine.model.families as families_package
from engine.config import config_from_dict, known_keys
from engine.model.families import (
    CUSTOM,
    DEMO,
    FAMILIES,
    MODELS,
    get_model,
    list_models,
    model_label,
    model_path,
    register_family,
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
        "freeze_multi_modal_projector": True,
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
    assert get_model("Qwen3-235B-A22B-Instruct-2507").params == 235
    assert get_model("gpt-oss-120b").params == 117 and get_model("Kimi-K2-Instruct").params == 1000
    with pytest.raises(ValueError, match="size"):
        register_model("Sizeless", hf="org/sizeless", template="chatml", family="qwen")
    assert "Sizeless" not in MODELS


def test_registry_has_the_well_known_families():
    assert len(list_models()) >= 250
    families = {get_model(name).family for name in list_models()}
    assert {"qwen", "llama", "mistral", "gemma", "phi", "glm", "deepseek", "yi", "baichuan", "internlm", "cohere",
            "falcon", "zephyr", "vicuna", "smollm", "tinyllama", "gpt-oss", "kimi", "minimax", "olmo", "granite",
            "hunyuan", "seed", "ernie", "lfm", "mimo", "minicpm", "exaone"} <= families
    assert families == set(FAMILIES)  # no family registered without models


# Current models, each with the chat template LLaMA-Factory 0.9.5 gives it (or, where it lists none, the one whose
# turn markers the model writes: Kimi K2 → moonlight, SmolLM3 → smollm, OLMo 2 → olmo, GLM-4.6 → glm4_moe).
CURRENT = {
    "Qwen3-4B-Instruct-2507": "qwen3_nothink", "Qwen3-30B-A3B-Instruct-2507": "qwen3_nothink",
    "Qwen3-235B-A22B-Instruct-2507": "qwen3_nothink", "Qwen3-4B-Thinking-2507": "qwen3",
    "Qwen3-30B-A3B-Thinking-2507": "qwen3", "Qwen3-235B-A22B-Thinking-2507": "qwen3", "Qwen3-8B": "qwen3",
    "Qwen3-Next-80B-A3B-Instruct": "qwen3_nothink", "Qwen3.5-9B": "qwen3_5", "Qwen3.5-397B-A17B": "qwen3_5",
    "Qwen3.6-27B": "qwen3_6", "Qwen3.6-35B-A3B": "qwen3_6", "QwQ-32B": "qwen",
    "Gemma-3-27B-Instruct": "gemma3", "Gemma-3-1B-Instruct": "gemma2", "Gemma-3n-E4B-Instruct": "gemma3n",
    "Gemma-4-31B-Instruct": "gemma4", "Gemma-4-26B-A4B-Instruct": "gemma4", "Gemma-4-E4B-Instruct": "gemma4n",
    "Llama-4-Scout-17B-16E-Instruct": "llama4", "Llama-4-Maverick-17B-128E-Instruct": "llama4",
    "gpt-oss-20b": "gpt_oss", "gpt-oss-120b": "gpt_oss",
    "GLM-4.5": "glm4_moe", "GLM-4.5-Air": "glm4_moe", "GLM-4.6": "glm4_moe", "GLM-4.7": "glm4_7",
    "GLM-4.7-Flash": "glm4_7",
    "DeepSeek-V3": "deepseek3", "DeepSeek-V3.1": "deepseek3", "DeepSeek-R1": "deepseekr1",
    "DeepSeek-R1-0528": "deepseekr1", "DeepSeek-R1-Distill-Qwen-7B": "deepseekr1",
    "DeepSeek-R1-Distill-Llama-70B": "deepseekr1",
    "Kimi-K2-Instruct": "moonlight", "Moonlight-16B-A3B-Instruct": "moonlight",
    "MiniMax-M1-80k": "minimax1", "MiniMax-M2": "minimax2", "MiniMax-M2.1": "minimax2",
    "Phi-4": "phi4", "Phi-4-mini-Instruct": "phi4_mini",
    "Mistral-Small-3.2-24B-Instruct-2506": "mistral_small", "Mistral-Small-24B-Instruct-2501": "mistral_small",
    "Ministral-8B-Instruct-2410": "ministral", "Ministral-3-8B-Instruct-2512": "ministral3",
    "OLMo-2-1124-7B-Instruct": "olmo", "SmolLM2-1.7B-Instruct": "smollm2", "SmolLM3-3B": "smollm",
    "Granite-4.0-H-Small": "granite4", "Hunyuan-7B-Instruct": "hunyuan", "Seed-OSS-36B-Instruct": "seed_oss",
    "ERNIE-4.5-21B-A3B-Instruct": "ernie_nothink", "ERNIE-4.5-21B-A3B-Thinking": "ernie", "LFM2-1.2B": "lfm2",
    "LFM2.5-1.2B-Instruct": "lfm2",
}


@pytest.mark.parametrize("name", list(CURRENT))
def test_current_models_are_listed_with_their_template(name: str):
    assert get_model(name).template == CURRENT[name]


def test_every_template_is_registered():
    # Templates are checked here, not at registration, so a model can be listed in the same change as its template.
    known = set(list_templates())
    missing = sorted({get_model(name).template for name in list_models()} - known)
    assert not missing, f"models name templates that engine.templates lacks: {', '.join(missing)}"


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_is_well_formed(name: str):
    info = get_model(name)
    assert info.name == name and name != CUSTOM
    assert info.family in FAMILIES
    assert info.notes == info.notes.strip() and "  " not in info.notes, repr(info.notes)
    if info.hf is None:  # built on this computer: named by its reserved path
        assert info.local and info.local.startswith("demo"), info.local
    else:
        assert HUB_ID.match(info.hf), info.hf
    if info.ms is not None:
        assert HUB_ID.match(info.ms), info.ms
    assert set(info.recommended) <= set(known_keys())


def test_names_and_hub_ids_are_unique():
    names = list_models()
    assert len(names) == len(set(names))
    for hub in ("hf", "ms"):  # one id, one entry: a config's model_name_or_path reads back as one name
        ids = [getattr(get_model(n), hub).lower() for n in names if getattr(get_model(n), hub)]
        assert len(ids) == len(set(ids)), hub


def test_the_picker_lists_the_demo_first_then_family_by_family():
    names = list_models()
    assert names[0] == DEMO
    runs = [family for family, _ in groupby(get_model(name).family for name in names)]
    assert runs == list(FAMILIES)  # each family in one piece, in the order the families were registered
    qwen = [name for name in names if get_model(name).family == "qwen"]
    assert qwen.index("Qwen3.6-27B") < qwen.index("Qwen3-4B-Instruct-2507") < qwen.index("Qwen2.5-7B-Instruct")


def test_labels_name_the_family_so_typing_it_finds_the_whole_family():
    assert model_label("Qwen3-4B-Instruct-2507") == "Qwen · Qwen3-4B-Instruct-2507"
    assert model_label("gpt-oss-20b") == "gpt-oss · gpt-oss-20b"
    assert model_label(DEMO) == DEMO
    labels = [model_label(name) for name in list_models()]
    assert len(labels) == len(set(labels))

    def typed(text: str) -> set[str]:  # the picker keeps the entries whose label holds the typed text, any case
        return {name for name, label in zip(list_models(), labels, strict=True) if text.lower() in label.lower()}

    for family, shown in FAMILIES.items():
        members = {name for name in list_models() if get_model(name).family == family}
        assert members <= typed(shown), family
    assert "Moonlight-16B-A3B-Instruct" in typed("kimi") and "QwQ-32B" in typed("qwen")
    assert "DeepSeek-R1-Distill-Llama-8B" in typed("deepseek")
    assert typed("gemma-4") == {name for name in MODELS if name.startswith("Gemma-4-")}


def test_every_vendor_module_is_imported():
    modules = {info.name for info in pkgutil.iter_modules(families_package.__path__)}
    assert {name for name in modules if f"engine.model.families.{name}" not in sys.modules} == set()


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
    assert template_for("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B") == "deepseekr1"
    assert template_for("Qwen/Qwen3-30B-A3B-Instruct-2507") == "qwen3_nothink"
    assert template_for("ZhipuAI/GLM-4.6") == "glm4_moe"
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
    with pytest.raises(ValueError, match="not a template name"):
        register_model("Test-Model-X", hf="org/x", template="Qwen 3", family="qwen", params=1)
    with pytest.raises(ValueError, match="unknown family 'test'"):
        register_model("Test-Model-X", hf="org/x", template="chatml", family="test", params=1)
    assert "Test-Model-X" not in MODELS
    with pytest.raises(ValueError, match="already registered"):
        register_family("qwen", "Qwen again")


def test_import_leaves_heavy_libraries_out():
    code = "import sys, engine.model.families; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert not {"torch", "transformers", "peft", "trl", "datasets", "gradio"} & loaded


def test_the_vision_demo_is_offline_and_named_by_its_reserved_path():
    from engine.model.families import DEMO_VISION, find_model, template_for

    info = get_model(DEMO_VISION)
    assert info.hf is None and info.family == "demo" and info.template == "qwen2_vl"
    assert model_path(DEMO_VISION) == "demo-vision" and find_model("demo-vision") is info
    assert template_for("demo-vision") == "qwen2_vl" and find_model("demo") is get_model(DEMO)
    assert info.recommended["dataset"] == "mllm_colors" and info.recommended["freeze_multi_modal_projector"] is False
