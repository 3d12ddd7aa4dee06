"""APOLLO, Adam-mini and Muon on the tiny model through the Trainer, and the checks of which optimizers may combine."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import load_config
from engine.errors import ConfigError, ModelError
from engine.model.loader import load_model, load_tokenizer
from engine.model.optimizers import create_optimizer
from engine.train.callbacks import AbortCallback
from engine.train.method_checks import check_optimizer_choice
from engine.train.trainer_setup import build_trainer


def make_config(model_dir: Path, out: Path, *overrides: str) -> Any:
    return load_config(None, [f"model_name_or_path={model_dir}", f"output_dir={out}", "finetuning_type=full",
                              "max_steps=4", "logging_steps=1", "learning_rate=1e-2", "per_device_train_batch_size=4",
                              "save_steps=1000", "report_to=none", "seed=7", *overrides])


def rows(count: int = 8, length: int = 24) -> list[dict[str, list[int]]]:
    """Fixed token rows, learnt from the third token on: the loss on them falls as the model memorises them."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(count):
        ids = torch.randint(10, 500, (length,), generator=generator).tolist()
        out.append({"input_ids": ids, "labels": [-100, -100, *ids[2:]]})
    return out


def train(model_dir: Path, out: Path, *overrides: str) -> tuple[Any, Any, dict[str, torch.Tensor]]:
    """Train a few steps through build_trainer; returns the trainer, the model and its weights before training."""
    config = make_config(model_dir, out, *overrides)
    tokenizer = load_tokenizer(config.model)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True)
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    trainer = build_trainer(config, model, tokenizer, rows(), None, run_dir=out, abort=AbortCallback())
    trainer.train()
    return trainer, model, before


def losses(trainer: Any) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def in_use(trainer: Any) -> Any:
    """The optimizer the Trainer steps (accelerate wraps it)."""
    return getattr(trainer.optimizer, "optimizer", trainer.optimizer)


def test_muon_steps_the_hidden_matrices(tiny_model_dir: Path, tmp_path: Path):
    trainer, model, before = train(tiny_model_dir, tmp_path, "use_muon=true")
    combined = in_use(trainer)
    muon, adamw = combined.optimizers
    assert type(muon) is torch.optim.Muon and type(adamw) is torch.optim.AdamW
    names = {id(p): n for n, p in model.named_parameters()}
    muon_names = {names[id(p)] for group in muon.param_groups for p in group["params"]}
    adamw_names = {names[id(p)] for group in adamw.param_groups for p in group["params"]}
    hidden = {n for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n and "lm_head" not in n}
    assert muon_names == hidden and all("proj" in n for n in hidden)
    assert adamw_names == set(names.values()) - hidden  # embeddings, head and norms
    # The schedule reaches both parts; both moved their weights, and the loss fell.
    assert muon.param_groups[0]["lr"] == adamw.param_groups[0]["lr"] < 1e-2
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert losses(trainer)[-1] < losses(trainer)[0]


def test_muon_checkpoint_state_round_trips(tiny_model_dir: Path, tmp_path: Path):
    trainer, _, _ = train(tiny_model_dir, tmp_path, "use_muon=true", "max_steps=1")
    combined = in_use(trainer)
    state = combined.state_dict()
    assert len(state["parts"]) == 2 and state["parts"][0]["state"]  # Muon's momentum buffers are there
    combined.load_state_dict(state)


def test_adam_mini_trains(tiny_model_dir: Path, tmp_path: Path):
    pytest.importorskip("adam_mini")
    trainer, model, before = train(tiny_model_dir, tmp_path, "use_adam_mini=true")
    assert type(in_use(trainer)).__name__ == "Adam_mini"
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], model.model.layers[0].self_attn.q_proj.weight)
    assert losses(trainer)[-1] < losses(trainer)[0]


@pytest.mark.parametrize("layerwise", [False, True])
def test_apollo_trains(tiny_model_dir: Path, tmp_path: Path, layerwise: bool):
    pytest.importorskip("apollo_torch")
    trainer, model, before = train(tiny_model_dir, tmp_path, "use_apollo=true", "apollo_rank=4",
                                   "apollo_update_interval=1", "apollo_target=q_proj,up_proj", "apollo_scale=1",
                                   "apollo_scale_front=true", f"apollo_layerwise={str(layerwise).lower()}")
    optimizer = in_use(trainer)
    if layerwise:
        assert optimizer.layerwise and len(optimizer.per_param) == len(list(model.parameters()))
        projected = [o for o in optimizer.per_param.values() if "rank" in o.param_groups[0]]
        assert len(projected) == 4 and all(o.scale_front for o in projected)
        seeds = {o.state[o.param_groups[0]["params"][0]]["seed"] for o in projected}
        assert len(seeds) == 4  # each random projection its own
    else:
        groups = [g for g in optimizer.param_groups if "rank" in g]
        assert len(groups) == 1 and len(groups[0]["params"]) == 4  # q_proj and up_proj of 2 layers
        assert groups[0]["rank"] == 4 and groups[0]["proj"] == "random" and optimizer.scale_front
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"], model.model.layers[0].self_attn.q_proj.weight)
    assert losses(trainer)[-1] < losses(trainer)[0]


def test_apollo_unknown_target(tiny_model_dir: Path, tmp_path: Path):
    pytest.importorskip("apollo_torch")
    config = make_config(tiny_model_dir, tmp_path, "use_apollo=true", "apollo_target=nope")
    tokenizer = load_tokenizer(config.model)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True)
    with pytest.raises(ModelError) as info:
        create_optimizer(model, 1e-3, 0.0, config.finetuning, {})
    assert info.value.key == "apollo_target_not_found" and "q_proj" in str(info.value)


@pytest.mark.parametrize(("package", "flag", "expected", "extra"), [
    ("apollo_torch", "use_apollo", "apollo_missing", "llm-studio[apollo]"),
    ("adam_mini", "use_adam_mini", "adam_mini_missing", "llm-studio[adam-mini]"),
])
def test_missing_optimizer_package(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path, tmp_path: Path,
                                   package: str, flag: str, expected: str, extra: str):
    config = make_config(tiny_model_dir, tmp_path, f"{flag}=true")
    tokenizer = load_tokenizer(config.model)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    with pytest.raises(ModelError) as info:
        create_optimizer(model, 1e-4, 0.0, config.finetuning, {})
    assert info.value.key == expected and f'pip install "{extra}"' in str(info.value)


# ---------------------------------------------------------------- which combinations are refused


def refused(tmp_path: Path, *overrides: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        check_optimizer_choice(make_config("demo", tmp_path, *overrides))
    return info.value


def test_one_optimizer_method_at_a_time(tmp_path: Path):
    error = refused(tmp_path, "use_apollo=true", "use_muon=true")
    assert error.key == "optimizer_methods_conflict" and "use_apollo" in str(error) and "use_muon" in str(error)
    assert refused(tmp_path, "use_galore=true", "use_badam=true").key == "optimizer_methods_conflict"
    error = refused(tmp_path, "finetuning_type=lora", "loraplus_lr_ratio=16", "use_muon=true")
    assert error.key == "optimizer_methods_conflict"


@pytest.mark.parametrize("flag", ["use_apollo", "use_adam_mini", "use_galore", "use_badam"])
@pytest.mark.parametrize("method", ["lora", "oft"])
def test_full_weight_optimizers_refuse_adapters(tmp_path: Path, flag: str, method: str):
    error = refused(tmp_path, f"finetuning_type={method}", f"{flag}=true")
    assert error.key == "optimizer_needs_full_weights" and flag in str(error) and method in str(error)


def test_optimizer_combinations_refused(tmp_path: Path):
    error = refused(tmp_path, "use_apollo=true", "apollo_layerwise=true", "gradient_accumulation_steps=4")
    assert error.key == "layerwise_accumulation" and "apollo_layerwise" in str(error)
    assert refused(tmp_path, "use_muon=true", "optim=sgd").key == "optimizer_unsupported"
    assert refused(tmp_path, "use_apollo=true", "optim=adafactor").key == "optimizer_unsupported"
    deepspeed = tmp_path / "ds.json"
    deepspeed.write_text("{}")
    assert refused(tmp_path, "use_muon=true", f"deepspeed={deepspeed}").key == "optimizer_with_deepspeed"
    assert refused(tmp_path, "finetuning_type=full", "loraplus_lr_ratio=8").key == "loraplus_needs_lora"


@pytest.mark.parametrize("overrides", [
    (), ("use_muon=true",), ("use_muon=true", "finetuning_type=lora"), ("use_adam_mini=true", "finetuning_type=freeze"),
    ("use_apollo=true", "apollo_layerwise=true"), ("use_apollo=true", "gradient_accumulation_steps=4"),
    ("finetuning_type=lora", "loraplus_lr_ratio=16"),
])
def test_optimizer_choices_accepted(tmp_path: Path, overrides: tuple[str, ...]):
    check_optimizer_choice(make_config("demo", tmp_path, *overrides))
