"""LLaMA Pro: `studio expand-model` adds identity blocks (same logits), and `use_llama_pro` trains only those."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.cli import main
from engine.config import load_config
from engine.model.block_expansion import expand_model
from engine.model.loader import load_tokenizer
from engine.model.methods.weights import llama_pro_layer_ids
from tests.engine.test_model import error_key, load, make_args

IDS = torch.tensor([[3, 41, 97, 250, 511, 700, 1000, 8]])


@pytest.fixture(scope="module")
def expanded_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model (2 layers) expanded by 2 blocks through the CLI: 4 layers, the new ones 1 and 3."""
    out = tmp_path_factory.mktemp("pro") / "expanded"
    assert main(["expand-model", "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(out),
                 "--num_expand", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def tokenizer(expanded_dir: Path) -> Any:
    return load_tokenizer(make_args(expanded_dir)[0])


def logits(model_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_the_expanded_model_answers_like_the_original(expanded_dir: Path, tiny_model_dir: Path) -> None:
    assert json.loads((expanded_dir / "config.json").read_text())["num_hidden_layers"] == 4
    assert {"model.safetensors", "tokenizer.json", "studio_model.json"} <= {p.name for p in expanded_dir.iterdir()}
    assert not any(p.name.startswith(".") for p in expanded_dir.parent.iterdir())  # no temporary folder left
    torch.testing.assert_close(logits(expanded_dir), logits(tiny_model_dir), rtol=1e-5, atol=1e-5)


def test_new_blocks_are_copies_with_zero_output_projections(expanded_dir: Path, tiny_model_dir: Path) -> None:
    from safetensors.torch import load_file

    old, new = load_file(tiny_model_dir / "model.safetensors"), load_file(expanded_dir / "model.safetensors")
    layer = "model.layers.{}.{}"
    for new_index, old_index in ((0, 0), (1, 0), (2, 1), (3, 1)):
        for name in ("self_attn.q_proj.weight", "mlp.up_proj.weight", "input_layernorm.weight"):
            assert torch.equal(new[layer.format(new_index, name)], old[layer.format(old_index, name)])
        copied = new_index in (1, 3)
        for name in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
            value, source = new[layer.format(new_index, name)], old[layer.format(old_index, name)]
            assert torch.count_nonzero(value) == 0 if copied else torch.equal(value, source)


def test_one_block_on_two_layers_goes_last(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = expand_model(str(tiny_model_dir), tmp_path / "one", 1)
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 3
    assert llama_pro_layer_ids(3, 1) == [2] and llama_pro_layer_ids(6, 2) == [2, 5]
    torch.testing.assert_close(logits(out), logits(tiny_model_dir), rtol=1e-5, atol=1e-5)


def test_use_llama_pro_trains_only_the_new_blocks(expanded_dir: Path, tokenizer: Any) -> None:
    model = load(expanded_dir, tokenizer, finetuning_type="freeze", freeze_trainable_layers=2, use_llama_pro=True)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable == {name for name, _ in model.named_parameters() if name.startswith(("model.layers.1.",
                                                                                          "model.layers.3."))}
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model(input_ids=IDS, labels=IDS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = dict(model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed <= trainable
    # The zeroed output projections learn first (the rest of a new block gets gradients once they are non-zero).
    assert {f"model.layers.{i}.{m}.weight" for i in (1, 3) for m in ("self_attn.o_proj", "mlp.down_proj")} <= changed


@pytest.mark.slow
def test_a_llama_pro_training_run_changes_only_the_new_blocks(expanded_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from engine.train.run import run_training
    from engine.validation import validate_config

    out = tmp_path / "run"
    config = validate_config(load_config(None, [
        f"model_name_or_path={expanded_dir}", f"output_dir={out}", "finetuning_type=freeze",
        "freeze_trainable_layers=2", "use_llama_pro=true", "dataset=identity", "max_samples=16", "max_steps=2",
        "per_device_train_batch_size=4", "learning_rate=1e-2", "cutoff_len=64", "save_steps=1000",
        "template=chatml"]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    before, after = load_file(expanded_dir / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith(("model.layers.1.", "model.layers.3.")) for name in changed)
    assert "model.layers.3.mlp.down_proj.weight" in changed


def test_use_llama_pro_with_lora_and_oft_adapts_only_the_new_blocks(expanded_dir: Path, tokenizer: Any) -> None:
    for method in ("lora", "oft"):
        model = load(expanded_dir, tokenizer, finetuning_type=method, freeze_trainable_layers=2, use_llama_pro=True,
                     lora_rank=2, oft_block_size=16)
        layers = {name.split(".")[4] for name, param in model.named_parameters() if param.requires_grad}
        assert layers == {"1", "3"}, method


def test_llama_pro_layer_count_errors(expanded_dir: Path, tokenizer: Any) -> None:
    err = error_key(lambda: load(expanded_dir, tokenizer, finetuning_type="freeze", freeze_trainable_layers=3,
                                 use_llama_pro=True))
    assert err.key == "llama_pro_not_divisible" and err.params["layers"] == 4
    err = error_key(lambda: load(expanded_dir, tokenizer, finetuning_type="freeze", freeze_trainable_layers=-1,
                                 use_llama_pro=True))
    assert err.key == "llama_pro_trainable_layers"


def test_expand_model_errors(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert error_key(lambda: expand_model(str(tiny_model_dir), tmp_path / "a", 3)).key == "expand_not_divisible"
    assert error_key(lambda: expand_model(str(tiny_model_dir), tmp_path / "a", 0)).key == "expand_bad_count"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine", encoding="utf-8")
    assert error_key(lambda: expand_model(str(tiny_model_dir), tmp_path / "busy", 1)).key == "expand_output_not_empty"
    assert (tmp_path / "busy" / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not (tmp_path / "a").exists()
    code = main(["expand-model", "--model_name_or_path", str(tiny_model_dir), "--output_dir", str(tmp_path / "b"),
                 "--num_expand", "3"])
    assert code == 1 and "has 2 layers, which 3 does not divide" in capsys.readouterr().err


def test_block_expansion_imports_without_torch() -> None:
    code = ("import sys, engine.model.block_expansion; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'transformers', 'peft'))))")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0


def test_a_block_without_output_projections_is_refused(tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.model import block_expansion

    monkeypatch.setattr(block_expansion, "ZEROED_PROJECTIONS", ("c_proj",))
    err = error_key(lambda: expand_model(str(tiny_model_dir), tmp_path / "gpt2ish", 1))
    assert err.key == "expand_no_projections" and "o_proj" in err.params["names"]
    assert not (tmp_path / "gpt2ish").exists()
