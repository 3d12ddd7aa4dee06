"""Model loading and finetuning methods on the tiny offline model: full, freeze, LoRA family, QLoRA, optimizers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import FinetuningArguments, ModelArguments
from engine.errors import ModelError
from engine.model import boosters
from engine.model.adapters import count_parameters, find_linear_modules
from engine.model.loader import load_model, load_tokenizer
from engine.model.optimizers import create_optimizer

LINEAR = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
MODEL_KEYS = {f.name for f in fields(ModelArguments)}


def make_args(model_dir: Path | str, **overrides: Any) -> tuple[ModelArguments, FinetuningArguments]:
    """ModelArguments and FinetuningArguments for the tiny model, each override sent to its own group."""
    model = ModelArguments(model_name_or_path=str(model_dir), **{k: v for k, v in overrides.items() if k in MODEL_KEYS})
    finetuning = FinetuningArguments(**{k: v for k, v in overrides.items() if k not in MODEL_KEYS})
    return model, finetuning


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(make_args(tiny_model_dir)[0])


def load(model_dir: Path | str, tokenizer: Any, is_trainable: bool = True, **overrides: Any) -> Any:
    model_args, finetuning_args = make_args(model_dir, **overrides)
    return load_model(tokenizer, model_args, finetuning_args, is_trainable=is_trainable)


def trainable_names(model: Any) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def backward(model: Any) -> None:
    ids = torch.randint(10, 500, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()


def error_key(call: Any) -> ModelError:
    with pytest.raises(ModelError) as info:
        call()
    return info.value


# ---------------------------------------------------------------- tokenizer and full


def test_tokenizer_pad_and_padding_side(tokenizer: Any) -> None:
    assert tokenizer.pad_token is not None
    assert tokenizer.padding_side == "right"


def test_added_tokens_resize_embeddings_and_train_them(tiny_model_dir: Path) -> None:
    model_args, finetuning_args = make_args(tiny_model_dir, add_tokens="<x1>,<x2>", add_special_tokens="<s1>",
                                            resize_vocab=True, lora_rank=2)
    tok = load_tokenizer(model_args)
    assert len(tok) == 1024 + 3 and tok.convert_tokens_to_ids("<s1>") >= 1024
    model = load_model(tok, model_args, finetuning_args, is_trainable=True)
    assert model.get_input_embeddings().weight.shape[0] >= len(tok)
    assert "embed_tokens" in model.peft_config["default"].modules_to_save
    backward(model)


def test_full_trains_every_weight_in_float32(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    trainable, total = count_parameters(model)
    assert trainable == total > 0
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.training


def test_inference_is_frozen_and_in_eval_mode(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, is_trainable=False, finetuning_type="full")
    assert not model.training and count_parameters(model)[0] == 0


# ---------------------------------------------------------------- freeze


def test_freeze_last_layer(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, finetuning_type="freeze", freeze_trainable_layers=1)
    names = trainable_names(model)
    assert names == {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")}


def test_freeze_first_layer_mlp_only_plus_extras(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, finetuning_type="freeze", freeze_trainable_layers=-1,
                 freeze_trainable_modules="mlp", freeze_extra_modules="norm")
    names = trainable_names(model)
    assert {n for n in names if "layers" in n} == {f"model.layers.0.mlp.{m}_proj.weight" for m in ("gate", "up", "down")}
    assert "model.norm.weight" in names and "model.embed_tokens.weight" not in names


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("freeze_trainable_modules", "mlp,attention", "freeze_module_not_found"),
    ("freeze_extra_modules", "embeddings", "freeze_extra_not_found"),
])
def test_freeze_bad_module_names(tiny_model_dir: Path, tokenizer: Any, key: str, value: str, expected: str) -> None:
    err = error_key(lambda: load(tiny_model_dir, tokenizer, finetuning_type="freeze", **{key: value}))
    assert err.key == expected
    assert "self_attn" in str(err) or "embed_tokens" in str(err)  # the message lists what exists


# ---------------------------------------------------------------- LoRA


def lora_layers(model: Any) -> set[str]:
    return {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


def test_lora_all_targets_every_linear_but_the_head(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, lora_rank=4)
    config = model.peft_config["default"]
    assert set(config.target_modules) == LINEAR and config.lora_alpha == 8
    assert lora_layers(model) == LINEAR
    assert all("lora_" in name for name in trainable_names(model))
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}


def test_lora_specific_targets(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, lora_target="q_proj, v_proj", lora_alpha=16, lora_dropout=0.1)
    assert lora_layers(model) == {"q_proj", "v_proj"}
    assert model.peft_config["default"].lora_alpha == 16


def test_lora_bad_target_lists_linear_modules(tiny_model_dir: Path, tokenizer: Any) -> None:
    err = error_key(lambda: load(tiny_model_dir, tokenizer, lora_target="q_proj,query"))
    assert err.key == "lora_target_not_found" and err.params["name"] == "query"
    assert set(err.params["available"].split(", ")) == LINEAR


@pytest.mark.parametrize(("overrides", "attribute", "expected"), [
    ({"use_rslora": True}, "use_rslora", True),
    ({"use_dora": True}, "use_dora", True),
    ({"pissa_init": True, "pissa_iter": 4}, "init_lora_weights", "pissa_niter_4"),
    ({"pissa_init": True, "pissa_iter": -1}, "init_lora_weights", "pissa"),
])
def test_lora_variants_configure_and_train(tiny_model_dir: Path, tokenizer: Any, overrides: dict[str, Any],
                                           attribute: str, expected: Any) -> None:
    model = load(tiny_model_dir, tokenizer, lora_rank=4, lora_target="q_proj,down_proj", **overrides)
    assert getattr(model.peft_config["default"], attribute) == expected
    backward(model)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_additional_target_is_saved_fully(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, lora_rank=2, additional_target="norm")
    assert model.peft_config["default"].modules_to_save == ["norm"]
    assert any("modules_to_save" in name and "norm" in name for name in trainable_names(model))


def saved_adapter(tiny_model_dir: Path, tokenizer: Any, folder: Path, seed: int) -> dict[str, torch.Tensor]:
    """Save a LoRA adapter with non-zero B matrices; returns its weights by short name."""
    model = load(tiny_model_dir, tokenizer, lora_rank=2, lora_target="q_proj,v_proj")
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.save_pretrained(folder)
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def test_continue_from_saved_adapter(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    saved = saved_adapter(tiny_model_dir, tokenizer, tmp_path / "a1", seed=1)
    model = load(tiny_model_dir, tokenizer, adapter_name_or_path=str(tmp_path / "a1"), lora_rank=8)
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[n], saved[n]) and loaded[n].requires_grad for n in saved)
    assert model.peft_config["default"].r == 2  # the saved adapter's settings win

    frozen = load(tiny_model_dir, tokenizer, is_trainable=False, adapter_name_or_path=str(tmp_path / "a1"))
    assert count_parameters(frozen)[0] == 0 and not frozen.training


def test_create_new_adapter_merges_the_old_ones(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    saved_adapter(tiny_model_dir, tokenizer, tmp_path / "a1", seed=1)
    saved_adapter(tiny_model_dir, tokenizer, tmp_path / "a2", seed=2)
    both = f"{tmp_path / 'a1'},{tmp_path / 'a2'}"
    ids = torch.randint(10, 500, (1, 10))
    reference = load(tiny_model_dir, tokenizer, is_trainable=False, adapter_name_or_path=both)
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
    fresh = load(tiny_model_dir, tokenizer, adapter_name_or_path=both, create_new_adapter=True, lora_rank=4)
    assert fresh.peft_config["default"].r == 4
    assert all(torch.count_nonzero(p) == 0 for n, p in fresh.named_parameters() if "lora_B" in n)
    with torch.no_grad():
        torch.testing.assert_close(fresh(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)


def test_adapter_errors(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    assert error_key(lambda: load(tiny_model_dir, tokenizer, adapter_name_or_path=str(tmp_path / "nope"))).key == \
        "adapter_not_found"
    assert error_key(lambda: load(tiny_model_dir, tokenizer, adapter_name_or_path=str(tiny_model_dir))).key == \
        "adapter_config_missing"
    assert error_key(lambda: load(tiny_model_dir, tokenizer, finetuning_type="full",
                                  adapter_name_or_path=str(tmp_path))).key == "adapter_needs_adapter_method"


# ---------------------------------------------------------------- QLoRA


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_on_cpu_trains_only_lora(tiny_model_dir: Path, tokenizer: Any, bits: int) -> None:
    pytest.importorskip("bitsandbytes")
    plain_total = count_parameters(load(tiny_model_dir, tokenizer, lora_rank=2))[1]
    model = load(tiny_model_dir, tokenizer, quantization_bit=bits, lora_rank=2)
    linear_class = {4: "Linear4bit", 8: "Linear8bitLt"}[bits]
    assert type(model.base_model.model.model.layers[0].mlp.up_proj.base_layer).__name__ == linear_class
    assert count_parameters(model)[1] == plain_total  # packed 4-bit weights count every value
    backward(model)
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all("lora_" in n for n in with_grad)


def test_quantized_full_finetuning_is_refused(tiny_model_dir: Path, tokenizer: Any) -> None:
    err = error_key(lambda: load(tiny_model_dir, tokenizer, quantization_bit=4, finetuning_type="full"))
    assert err.key == "quantization_needs_adapter" and err.params["methods"] == "lora, oft"


# ---------------------------------------------------------------- optimizers


def adam() -> dict[str, Any]:
    return {"betas": (0.9, 0.999), "eps": 1e-8}


def test_no_special_optimizer_means_trainer_default(tiny_model_dir: Path, tokenizer: Any) -> None:
    model_args, ft = make_args(tiny_model_dir)
    assert create_optimizer(load(tiny_model_dir, tokenizer, lora_rank=2), 1e-4, 0.0, ft, adam()) is None


def test_loraplus_groups(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, lora_rank=2)
    ft = make_args(tiny_model_dir, loraplus_lr_ratio=16.0)[1]
    optimizer = create_optimizer(model, 1e-4, 0.01, ft, adam())
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(round(group["lr"], 12), set()).update(names[id(p)] for p in group["params"])
    assert by_lr.keys() == {1e-4, 1.6e-3}
    assert all("lora_B" in n for n in by_lr[1.6e-3]) and all("lora_A" in n for n in by_lr[1e-4])
    assert len(by_lr[1.6e-3]) == len(by_lr[1e-4]) == len(trainable_names(model)) // 2


def test_loraplus_needs_lora(tiny_model_dir: Path, tokenizer: Any) -> None:
    ft = make_args(tiny_model_dir, finetuning_type="full", loraplus_lr_ratio=4.0)[1]
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    assert error_key(lambda: create_optimizer(model, 1e-4, 0.0, ft, adam())).key == "loraplus_needs_lora"


def train_steps(model: Any, optimizer: Any, steps: int = 2) -> None:
    for _ in range(steps):
        backward(model)
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("layerwise", [False, True])
def test_galore_trains(tiny_model_dir: Path, tokenizer: Any, layerwise: bool) -> None:
    pytest.importorskip("galore_torch")
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    ft = make_args(tiny_model_dir, finetuning_type="full", use_galore=True, galore_rank=4,
                   galore_update_interval=1, galore_target="q_proj,up_proj", galore_layerwise=layerwise)[1]
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    optimizer = create_optimizer(model, 1e-3, 0.0, ft, adam())
    if layerwise:  # the weights step inside backward, at the learning rate the Trainer's schedule sets
        optimizer.param_groups[0]["lr"] = 0.0
        train_steps(model, optimizer, steps=1)
        assert torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)
        optimizer.param_groups[0]["lr"] = 1e-3
    else:
        projected = [g for g in optimizer.param_groups if "rank" in g]
        assert len(projected) == 1 and len(projected[0]["params"]) == 4  # q_proj and up_proj of 2 layers
    train_steps(model, optimizer)
    assert not torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)


def test_badam_ratio_mode_trains(tiny_model_dir: Path, tokenizer: Any) -> None:
    pytest.importorskip("badam")
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    ft = make_args(tiny_model_dir, finetuning_type="full", use_badam=True, badam_mode="ratio",
                   badam_update_ratio=0.1)[1]
    before = model.model.layers[1].mlp.up_proj.weight.detach().clone()
    optimizer = create_optimizer(model, 1e-3, 0.0, ft, adam())
    assert type(optimizer).__name__ == "BlockOptimizerRatio"
    train_steps(model, optimizer, steps=1)
    changed = before != model.model.layers[1].mlp.up_proj.weight
    assert 0 < changed.float().mean() < 0.5  # a sparse share of the entries moved


def test_badam_trains_one_block(tiny_model_dir: Path, tokenizer: Any) -> None:
    pytest.importorskip("badam")
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    ft = make_args(tiny_model_dir, finetuning_type="full", use_badam=True, badam_switch_mode="ascending",
                   badam_switch_interval=10)[1]
    layer0 = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    layer1 = model.model.layers[1].mlp.up_proj.weight.detach().clone()
    optimizer = create_optimizer(model, 1e-3, 0.0, ft, adam())
    train_steps(model, optimizer, steps=1)
    assert not torch.equal(layer0, model.model.layers[0].mlp.up_proj.weight)
    assert torch.equal(layer1, model.model.layers[1].mlp.up_proj.weight)


@pytest.mark.parametrize(("package", "flag", "expected"), [
    ("galore_torch", "use_galore", "galore_missing"),
    ("badam", "use_badam", "badam_missing"),
])
def test_missing_optimizer_package(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tokenizer: Any,
                                   package: str, flag: str, expected: str) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    model = load(tiny_model_dir, tokenizer, finetuning_type="full")
    ft = make_args(tiny_model_dir, finetuning_type="full", **{flag: True})[1]
    err = error_key(lambda: create_optimizer(model, 1e-4, 0.0, ft, adam()))
    assert err.key == expected and "pip install" in str(err)


# ---------------------------------------------------------------- loading errors and boosters


def test_missing_model_folder(tmp_path: Path, tokenizer: Any) -> None:
    assert error_key(lambda: load(tmp_path / "absent", tokenizer)).key == "model_path_missing"
    assert error_key(lambda: load_tokenizer(make_args(tmp_path / "absent")[0])).key == "model_path_missing"


def test_folder_without_tokenizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    assert error_key(lambda: load_tokenizer(make_args(tmp_path)[0])).key == "tokenizer_files_missing"


def test_truncated_safetensors_names_the_file(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    weights = broken / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    err = error_key(lambda: load(broken, tokenizer))
    assert err.key == "model_weights_corrupt" and str(weights) in str(err)

    weights.unlink()
    assert error_key(lambda: load(broken, tokenizer)).key == "model_weights_missing"


def test_folder_without_config_or_an_adapter_as_model(tokenizer: Any, tmp_path: Path) -> None:
    assert error_key(lambda: load(tmp_path, tokenizer)).key == "model_config_missing"
    (tmp_path / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}', encoding="utf-8")
    err = error_key(lambda: load(tmp_path, tokenizer))
    assert err.key == "model_path_is_adapter" and "org/base" in str(err)


def test_remote_code_needs_trust(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"model_type": "custom_x", "auto_map": {"AutoConfig": "configuration_x.XConfig"}}', encoding="utf-8")
    assert error_key(lambda: load(tmp_path, tokenizer)).key == "model_remote_code"


def test_offline_hub_id(tokenizer: Any) -> None:
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        pytest.skip("HF_HUB_OFFLINE is not set: the lookup would go to the network")
    err = error_key(lambda: load_tokenizer(make_args("someone/not-downloaded-model")[0]))
    assert err.key == "model_hub_offline" and "demo" in str(err)


def test_rope_scaling_linear(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, rope_scaling="linear", lora_rank=2)
    config = model.config
    assert config.rope_parameters["rope_type"] == "linear" and config.rope_parameters["factor"] == 2.0
    assert config.max_position_embeddings == 4096
    backward(model)


def test_attention_choices(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tokenizer: Any) -> None:
    assert load(tiny_model_dir, tokenizer, flash_attn="disabled", lora_rank=2).config._attn_implementation == "eager"
    assert load(tiny_model_dir, tokenizer, lora_rank=2).config._attn_implementation == "sdpa"
    monkeypatch.setattr(boosters, "has_package", lambda name: False)
    assert error_key(lambda: load(tiny_model_dir, tokenizer, flash_attn="fa2")).key == "attention_needs_package"
    monkeypatch.setattr(boosters, "has_package", lambda name: True)
    monkeypatch.setattr(boosters, "has_cuda", lambda: False)
    assert error_key(lambda: load(tiny_model_dir, tokenizer, flash_attn="fa3")).key == "attention_needs_gpu"


@pytest.mark.parametrize(("flag", "missing", "no_gpu"), [
    ("use_unsloth", "unsloth_missing", "unsloth_needs_gpu"),
    ("enable_liger_kernel", "liger_missing", "liger_needs_gpu"),
])
def test_boosters_need_package_and_gpu(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tokenizer: Any,
                                       flag: str, missing: str, no_gpu: str) -> None:
    monkeypatch.setattr(boosters, "has_package", lambda name: False)
    err = error_key(lambda: load(tiny_model_dir, tokenizer, **{flag: True}))
    assert err.key == missing and "pip install" in str(err)
    monkeypatch.setattr(boosters, "has_package", lambda name: True)
    monkeypatch.setattr(boosters, "has_cuda", lambda: False)
    assert error_key(lambda: load(tiny_model_dir, tokenizer, **{flag: True})).key == no_gpu


def test_linear_modules_exclude_the_head(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, is_trainable=False, finetuning_type="full")
    assert set(find_linear_modules(model)) == LINEAR


def test_reward_model_gets_a_trainable_score_head(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, stage="rm", lora_rank=2)
    ids = torch.randint(10, 500, (2, 8))
    assert model(input_ids=ids).logits.shape == (2, 1)
    assert any("score" in name for name in trainable_names(model))


def test_modules_import_without_torch() -> None:
    code = ("import sys, engine.model, engine.model.loader, engine.model.adapters, engine.model.optimizers, "
            "engine.model.boosters, engine.model.quantization; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'transformers', 'peft'))))")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0
