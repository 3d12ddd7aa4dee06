"""The finetuning-method registry and what it added: OFT (and QOFT), new special tokens with descriptions, and the
mixture-of-experts router loss, on the tiny offline model."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from engine.config import load_config
from engine.config.finetuning import FINETUNING_TYPES
from engine.model.adapters import count_parameters
from engine.model.loader import load_model, load_tokenizer
from engine.model.methods import METHODS, adapter_methods, quantizable_methods
from tests.engine.test_model import LINEAR, error_key, load, make_args

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return load_tokenizer(make_args(tiny_model_dir)[0])


def train_steps(model: Any, steps: int = 2, lr: float = 1e-2) -> None:
    """A few AdamW steps on random tokens (the loss of a causal LM on its own input)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(10, 500, (2, 12), generator=generator)
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


# ---------------------------------------------------------------- the registry


def test_registry_has_every_config_choice_and_each_module_the_interface() -> None:
    assert list(METHODS) == FINETUNING_TYPES
    for name, method in METHODS.items():
        module = importlib.import_module(method.module)
        assert callable(module.check) and callable(module.setup), name
    assert adapter_methods() == quantizable_methods() == ["lora", "oft"]


def test_registry_and_new_modules_import_without_torch() -> None:
    code = ("import sys, engine.model.methods, engine.model.methods.weights, engine.model.methods.peft_adapters, "
            "engine.model.methods.full, engine.model.methods.freeze, engine.model.methods.lora, "
            "engine.model.methods.oft, engine.model.special_tokens; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'transformers', 'peft'))))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_llama_pro_is_refused_with_full(tiny_model_dir: Path, tokenizer: Any) -> None:
    err = error_key(lambda: load(tiny_model_dir, tokenizer, finetuning_type="full", use_llama_pro=True))
    assert err.key == "llama_pro_method" and "finetuning_type: freeze" in str(err)


# ---------------------------------------------------------------- OFT


def oft_layers(model: Any) -> set[str]:
    return {name.split(".")[-1] for name, module in model.named_modules() if hasattr(module, "oft_R")}


def test_oft_trains_its_rotations_and_leaves_the_base_alone(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, finetuning_type="oft", oft_block_size=16, module_dropout=0.1)
    config = model.peft_config["default"]
    assert config.peft_type.value == "OFT" and config.oft_block_size == 16 and config.r == 0
    assert config.module_dropout == 0.1 and oft_layers(model) == LINEAR
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all(".oft_R." in name for name in trainable)
    before = snapshot(model)
    train_steps(model)
    after = dict(model.named_parameters())
    assert all(not torch.equal(before[name], after[name]) for name in trainable)
    assert all(torch.equal(before[name], after[name]) for name in before if name not in trainable)


def test_oft_rank_targets_and_their_errors(tiny_model_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_model_dir, tokenizer, finetuning_type="oft", oft_rank=4, oft_block_size=0,
                 oft_target="q_proj,down_proj")
    assert model.peft_config["default"].r == 4 and oft_layers(model) == {"q_proj", "down_proj"}
    for rank, block in ((0, 0), (4, 16)):
        err = error_key(lambda rank=rank, block=block: load(tiny_model_dir, tokenizer, finetuning_type="oft",
                                                            oft_rank=rank, oft_block_size=block))
        assert err.key == "oft_rank_or_block_size" and "oft_rank: 0 and oft_block_size: 32" in str(err)
    err = error_key(lambda: load(tiny_model_dir, tokenizer, finetuning_type="oft", oft_target="query"))
    assert err.key == "oft_target_not_found" and set(err.params["available"].split(", ")) == LINEAR


@pytest.mark.parametrize("bits", [4, 8])
def test_qoft_trains_on_a_quantized_base(tiny_model_dir: Path, tokenizer: Any, bits: int) -> None:
    pytest.importorskip("bitsandbytes")
    model = load(tiny_model_dir, tokenizer, finetuning_type="oft", oft_block_size=16, quantization_bit=bits)
    linear_class = {4: "Linear4bit", 8: "Linear8bitLt"}[bits]
    assert type(model.base_model.model.model.layers[0].mlp.up_proj.base_layer).__name__ == linear_class
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    before = snapshot(model)
    train_steps(model)
    after = dict(model.named_parameters())
    assert trainable and all(".oft_R." in name and not torch.equal(before[name], after[name]) for name in trainable)


def test_oft_refuses_to_split_tied_embeddings(tiny_model_dir: Path) -> None:
    model_args, finetuning_args = make_args(tiny_model_dir, finetuning_type="oft", add_special_tokens="<x>",
                                            resize_vocab=True)
    tok = load_tokenizer(model_args)
    err = error_key(lambda: load_model(tok, model_args, finetuning_args, is_trainable=True))
    assert err.key == "oft_tied_embeddings" and "embed_tokens" in err.params["modules"]
    assert "finetuning_type: lora" in str(err)


def test_a_lora_adapter_is_not_continued_as_oft(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    load(tiny_model_dir, tokenizer, lora_rank=2, lora_target="q_proj").save_pretrained(tmp_path / "lora")
    err = error_key(lambda: load(tiny_model_dir, tokenizer, finetuning_type="oft",
                                 adapter_name_or_path=str(tmp_path / "lora")))
    assert err.key == "adapter_type_mismatch" and err.params["saved"] == "lora"
    assert "create_new_adapter: true" in str(err)
    model = load(tiny_model_dir, tokenizer, finetuning_type="oft", adapter_name_or_path=str(tmp_path / "lora"),
                 create_new_adapter=True)  # the LoRA is merged, a fresh OFT adapter trains on top
    assert model.peft_config["default"].peft_type.value == "OFT" and count_parameters(model)[0] > 0


@pytest.fixture(scope="module")
def oft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real OFT training run folder (three steps of SFT on the identity data)."""
    from engine.train.run import run_training
    from engine.validation import validate_config

    out = tmp_path_factory.mktemp("oft") / "run"
    config = validate_config(load_config(None, [
        f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "finetuning_type=oft", "oft_block_size=16",
        "dataset=identity", "max_samples=16", "max_steps=3", "per_device_train_batch_size=4", "learning_rate=1e-2",
        "cutoff_len=64", "save_steps=1000", "logging_steps=1", "template=chatml"]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


def run_logits(model_dir: Path, tokenizer: Any, adapter: Path | None) -> torch.Tensor:
    model = load(model_dir, tokenizer, is_trainable=False, finetuning_type="oft",
                 adapter_name_or_path=str(adapter) if adapter else None)
    with torch.no_grad():
        return model(input_ids=torch.tensor([[5, 60, 70, 80, 90, 100]])).logits


@pytest.mark.slow
def test_an_oft_run_folder_serves_chat(oft_run: Path, tiny_model_dir: Path, tokenizer: Any) -> None:
    from peft import PeftModel

    from engine.inference import load_backend

    assert (oft_run / "adapter_config.json").is_file()
    assert '"peft_type": "OFT"' in (oft_run / "adapter_config.json").read_text()
    backend = load_backend(load_config(None, {"model_name_or_path": str(tiny_model_dir),
                                              "adapter_name_or_path": str(oft_run), "max_new_tokens": 4}))
    assert isinstance(backend.model, PeftModel) and backend.model.peft_config["default"].peft_type.value == "OFT"
    assert backend.model_id == oft_run.name
    reply = backend.generate([{"role": "user", "content": "Who are you?"}], max_new_tokens=4, do_sample=False)
    assert reply.completion_tokens > 0
    trained = run_logits(tiny_model_dir, tokenizer, oft_run)
    assert not torch.allclose(trained, run_logits(tiny_model_dir, tokenizer, None))  # the adapter does something


@pytest.mark.slow
def test_an_oft_run_folder_merges_on_export(oft_run: Path, tiny_model_dir: Path, tokenizer: Any,
                                            tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from engine.export import run_export

    out = tmp_path / "export"
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(oft_run),
                                "finetuning_type": "oft", "export_dir": str(out), "export_parity": False})
    assert run_export(config) == 0
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        logits = merged(input_ids=torch.tensor([[5, 60, 70, 80, 90, 100]])).logits
    torch.testing.assert_close(logits, run_logits(tiny_model_dir, tokenizer, oft_run), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- new special tokens


def tokens_file(folder: Path, tokens: dict[str, str]) -> Path:
    path = folder / "tokens.yaml"
    path.write_text(yaml.safe_dump(tokens, allow_unicode=True), encoding="utf-8")
    return path


DESCRIBED = {"<tool_start>": "the start of a tool call", "<tool_end>": "the end of the tool call"}


def load_with_tokens(model_dir: Path, tokens: Path, **overrides: Any) -> tuple[Any, Any]:
    model_args, finetuning_args = make_args(model_dir, new_special_tokens_config=str(tokens), **overrides)
    tok = load_tokenizer(model_args)
    return tok, load_model(tok, model_args, finetuning_args, is_trainable=True)


def test_desc_init_sets_each_new_row_to_its_description_mean(tiny_model_dir: Path, tmp_path: Path) -> None:
    tok, model = load_with_tokens(tiny_model_dir, tokens_file(tmp_path, DESCRIBED), finetuning_type="full",
                                  init_special_tokens="desc_init", add_special_tokens="<ignored>")
    assert len(tok) == 1024 + 2 and "<ignored>" not in tok.get_vocab()  # the file wins over add_special_tokens
    weight = model.get_input_embeddings().weight
    for token, description in DESCRIBED.items():
        ids = tok.encode(f"a{token}b", add_special_tokens=False)
        token_id = tok.convert_tokens_to_ids(token)
        assert token_id >= 1024 and ids.count(token_id) == 1 and len(ids) == 3  # one id of its own
        description_ids = tok(description, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(weight[token_id], weight[description_ids].mean(dim=0))


@pytest.mark.parametrize("method", ["noise_init", "desc_init_w_noise"])
def test_noisy_inits_are_near_their_centre(tiny_model_dir: Path, tmp_path: Path, method: str) -> None:
    tok, model = load_with_tokens(tiny_model_dir, tokens_file(tmp_path, DESCRIBED), finetuning_type="full",
                                  init_special_tokens=method)
    weight = model.get_input_embeddings().weight.detach()
    token_id = tok.convert_tokens_to_ids("<tool_start>")
    ids = tok(DESCRIBED["<tool_start>"], add_special_tokens=False)["input_ids"]
    centre = weight[:1024].mean(dim=0) if method == "noise_init" else weight[ids].mean(dim=0)
    distance = (weight[token_id] - centre).norm().item()
    assert 0.5 < distance < 1.5  # noise of std 1/sqrt(hidden) per value: norm about 1


def test_an_untied_head_gets_its_own_description_rows(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    untied = tmp_path / "untied"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, tie_word_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight))
    model.save_pretrained(untied)
    load_tokenizer(make_args(tiny_model_dir)[0]).save_pretrained(untied)
    tok, model = load_with_tokens(untied, tokens_file(tmp_path, DESCRIBED), init_special_tokens="desc_init",
                                  resize_vocab=True, lora_rank=2)
    token_id = tok.convert_tokens_to_ids("<tool_end>")
    ids = tok(DESCRIBED["<tool_end>"], add_special_tokens=False)["input_ids"]
    for weight in (model.get_input_embeddings().weight, model.get_output_embeddings().weight):
        torch.testing.assert_close(weight[token_id], weight[ids].mean(dim=0))
    rows = [model.get_input_embeddings().weight[token_id], model.get_output_embeddings().weight[token_id]]
    assert not torch.equal(*rows)  # each from its own matrix


def test_special_tokens_config_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    def key_of(**overrides: Any) -> str:
        return error_key(lambda: load_tokenizer(make_args(tiny_model_dir, **overrides)[0])).key

    assert key_of(new_special_tokens_config=str(tmp_path / "absent.yaml")) == "special_tokens_config_missing"
    (tmp_path / "list.yaml").write_text("- <a>\n- <b>\n", encoding="utf-8")
    assert key_of(new_special_tokens_config=str(tmp_path / "list.yaml")) == "special_tokens_config_not_mapping"
    (tmp_path / "bad.yaml").write_text("<a>: [unclosed\n", encoding="utf-8")
    assert key_of(new_special_tokens_config=str(tmp_path / "bad.yaml")) == "special_tokens_config_unreadable"
    assert key_of(init_special_tokens="desc_init", add_special_tokens="<a>") == "special_tokens_init_needs_config"


# ---------------------------------------------------------------- mixture-of-experts router loss


@pytest.fixture(scope="module")
def tiny_moe_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-expert Mixtral with the tiny model's tokenizer."""
    from transformers import MixtralConfig, MixtralForCausalLM

    folder = tmp_path_factory.mktemp("moe")
    config = MixtralConfig(vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, num_local_experts=2, num_experts_per_tok=1)
    torch.manual_seed(0)
    MixtralForCausalLM(config).save_pretrained(folder)
    load_tokenizer(make_args(tiny_model_dir)[0]).save_pretrained(folder)
    return folder


def test_moe_aux_loss_coef_turns_the_router_loss_on(tiny_moe_dir: Path, tokenizer: Any) -> None:
    model = load(tiny_moe_dir, tokenizer, finetuning_type="full", moe_aux_loss_coef=0.05)
    assert model.config.router_aux_loss_coef == 0.05 and model.config.output_router_logits
    ids = torch.randint(10, 500, (2, 8))
    out = model(input_ids=ids, labels=ids)
    assert out.aux_loss is not None and out.aux_loss > 0
    frozen = load(tiny_moe_dir, tokenizer, is_trainable=False, finetuning_type="full", moe_aux_loss_coef=0.05)
    assert not frozen.config.output_router_logits  # inference computes no router loss


def test_moe_aux_loss_coef_on_a_model_without_router_warns(tiny_model_dir: Path, tokenizer: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.model.loader"):
        model = load(tiny_model_dir, tokenizer, lora_rank=2, moe_aux_loss_coef=0.01)
    assert "has no mixture-of-experts router" in caplog.text
    assert not hasattr(model.config, "router_aux_loss_coef")
