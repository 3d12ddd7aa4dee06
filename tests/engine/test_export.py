"""Export: merge (logits, shards, legacy .bin), GGUF read back (names, metadata, q/k permutation), Ollama Modelfile,
parity.json, model card, hub errors, refusals, and `studio export` end to end on the tiny model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from engine.config import load_config
from engine.errors import ConfigError, ModelError, StudioError
from tests.engine.go_template import render as render_go

gguf = pytest.importorskip("gguf")

PROMPT_IDS = [[1, 20, 30, 40, 50, 60, 70, 2]]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def train_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as training leaves it: a LoRA adapter with non-zero B, config.yaml, all_results.json."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path_factory.mktemp("run") / "train_1"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS))
    generator = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=generator) * 0.05
    model.save_pretrained(run)
    (run / "config.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir), "template": "chatml",
                                                     "stage": "sft", "finetuning_type": "lora",
                                                     "dataset": "alpaca_en_demo,identity"}), encoding="utf-8")
    (run / "all_results.json").write_text(json.dumps({"train_loss": 1.2345, "epoch": 1.0}), encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def reference_logits(tiny_model_dir: Path, train_run: Path) -> torch.Tensor:
    """Base + adapter logits on a fixed input, computed before anything is merged."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), train_run).eval()
    with torch.no_grad():
        return model(torch.tensor(PROMPT_IDS)).logits


def _config_file(folder: Path, tiny_model_dir: Path, train_run: Path, **extra: object) -> Path:
    values = {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(train_run),
              "export_dir": str(folder / "export"), **extra}
    path = folder / "export.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cli_export(tiny_model_dir: Path, train_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`studio export CONFIG.yaml export_gguf=q8_0` run once through the CLI entry point."""
    from engine.cli import main

    folder = tmp_path_factory.mktemp("cli")
    config = _config_file(folder, tiny_model_dir, train_run)
    assert main(["export", str(config), "export_gguf=q8_0"]) == 0
    return folder / "export"


@pytest.fixture(scope="module")
def sharded_export(tiny_model_dir: Path, train_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export with tiny shards and an f16 GGUF file, without the parity check."""
    from engine.export import run_export

    out = tmp_path_factory.mktemp("sharded") / "export"
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(train_run),
                                "export_dir": str(out), "export_gguf": "f16", "export_parity": False})
    assert run_export(config, max_shard_size=200_000) == 0
    return out


@pytest.fixture(scope="module")
def merged_export(tiny_model_dir: Path, train_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A merged safetensors export with no GGUF file and no parity check."""
    from engine.export import run_export

    out = tmp_path_factory.mktemp("merged") / "export"
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(train_run),
                                "export_dir": str(out), "export_parity": False})
    assert run_export(config) == 0
    return out


def _merged_state(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


# ---------------------------------------------------------------- merge


def test_cli_export_writes_the_run_folder(cli_export: Path):
    names = {p.name for p in cli_export.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "studio_model.json",
            "model-q8_0.gguf", "Modelfile", "parity.json", "README.md", "export_results.json", "status.json",
            "trainer_log.jsonl", "config.yaml", "running_log.txt"} <= names
    status = json.loads((cli_export / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0 and status["task"] == "export"
    lines = [json.loads(line) for line in (cli_export / "trainer_log.jsonl").read_text().splitlines()]
    assert [line["step_name"] for line in lines] == ["load", "reference", "merge", "gguf", "ollama", "parity", "card",
                                                     "done"]
    assert [line["current_steps"] for line in lines] == list(range(8))
    assert all(line["total_steps"] == 7 and {"percentage", "elapsed_time", "remaining_time"} <= set(line)
               for line in lines)
    assert lines[-1]["percentage"] == 100
    assert json.loads((cli_export / "studio_model.json").read_text())["template"] == "chatml"


def test_merged_model_matches_base_plus_adapter_and_reloads_offline(cli_export: Path, reference_logits):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(cli_export, local_files_only=True).eval()
    with torch.no_grad():
        logits = model(torch.tensor(PROMPT_IDS)).logits
    assert torch.allclose(logits, reference_logits, atol=1e-5)
    assert not any("lora" in name for name in model.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(cli_export, local_files_only=True)
    assert tokenizer.eos_token == "<|im_end|>"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_parity_json_reports_every_prompt_matching(cli_export: Path):
    report = json.loads((cli_export / "parity.json").read_text())
    assert report["all_match"] and report["matched"] == report["total"] == len(report["prompts"]) == 4
    assert all(row["match"] and row["original_ids"] == row["exported_ids"] for row in report["prompts"])


def test_model_card_names_base_method_datasets_template_and_metrics(cli_export: Path, tiny_model_dir: Path):
    from engine.export.hub import is_hub_id

    card = (cli_export / "README.md").read_text()
    assert f"| Base model | `{tiny_model_dir}` |" in card and "base_model:" not in card  # a local folder
    assert is_hub_id("Qwen/Qwen2.5-0.5B") and not is_hub_id("demo") and not is_hub_id(str(tiny_model_dir))
    for text in ("lora (SFT)", "`alpaca_en_demo`", "`identity`", "`chatml`", "| train_loss | 1.234 |", "4 of 4",
                 "model-q8_0.gguf"):
        assert text in card, text


def test_shards_respect_the_size_and_legacy_format_writes_bin(sharded_export: Path, tmp_path: Path):
    index = json.loads((sharded_export / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    # A shard may exceed the limit only when it holds a single tensor larger than the limit.
    for shard in shards:
        tensors = [k for k, v in index["weight_map"].items() if v == shard]
        assert (sharded_export / shard).stat().st_size <= 200_000 + 10_000 or len(tensors) == 1
    from engine.export.merge import to_legacy_format

    legacy = tmp_path / "legacy"
    shutil.copytree(sharded_export, legacy)
    files = to_legacy_format(legacy)
    assert files and all(name.endswith(".bin") for name in files)
    assert not list(legacy.glob("*.safetensors")) and (legacy / "pytorch_model.bin.index.json").is_file()
    before, after = _merged_state(sharded_export), _merged_state(legacy)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_quantized_base_is_refused(tmp_path: Path, tiny_model_dir: Path):
    from engine.export import check_export
    from engine.export.merge import check_mergeable

    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "quantization_bit": 4,
                                "export_dir": str(tmp_path / "out")})
    with pytest.raises(ConfigError) as err:
        check_export(config)
    assert err.value.key == "export_quantized_base" and "quantization_bit: 4" in err.value.message()
    with pytest.raises(ModelError, match="quantization_bit"):
        check_mergeable(config)


def test_export_dir_refusals(cli_export: Path, tmp_path: Path, tiny_model_dir: Path):
    from engine.export import check_export

    def check(folder: Path, **extra: object) -> None:
        check_export(load_config(None, {"model_name_or_path": str(tiny_model_dir), "export_dir": str(folder),
                                        **extra}))

    with pytest.raises(ConfigError) as err:
        check(cli_export)
    assert err.value.key == "export_dir_has_export"
    check(cli_export, overwrite_output_dir=True)  # an earlier export may be replaced when asked
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):  # never files that are not an export
        with pytest.raises(ConfigError) as err:
            check(tmp_path / "mine", overwrite_output_dir=overwrite)
        assert err.value.key == "export_dir_not_empty" and "notes.txt" in err.value.message()
    with pytest.raises(ConfigError, match="export_dir"):
        check_export(load_config(None, {"model_name_or_path": str(tiny_model_dir)}))
    with pytest.raises(ConfigError) as err:
        check(tmp_path / "new", export_quantization_bit=4, export_gguf="q8_0", export_quantization_dataset="x")
    assert err.value.key == "export_gptq_and_gguf"


def test_failed_export_records_the_cause(tmp_path: Path, tiny_model_dir: Path):
    from engine.export import run_export

    out = tmp_path / "out"
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "export_dir": str(out),
                                "adapter_name_or_path": str(tmp_path / "no_such_adapter")})
    assert run_export(config) == 1
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "no_such_adapter" in status["error"] and status["task"] == "export"
    assert json.loads((out / "trainer_log.jsonl").read_text().splitlines()[-1])["step_name"] == "load"


def test_cli_bad_input_is_a_message_not_a_traceback(tmp_path: Path, capsys, tiny_model_dir: Path):
    from engine.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir), "export_gguf": "q3_k"}))
    assert main(["export", str(path)]) == 1
    err = capsys.readouterr().err
    assert "export_gguf" in err and "q8_0" in err and "Traceback" not in err
    assert main(["export", str(path), "export_gguf=none"]) == 1
    assert "export_dir" in capsys.readouterr().err


# ---------------------------------------------------------------- GGUF


def _field(reader, key: str):
    return reader.fields[key].contents()


def test_gguf_q8_0_reads_back_with_metadata_and_tokenizer(cli_export: Path):
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(cli_export / "model-q8_0.gguf")
    tokenizer = AutoTokenizer.from_pretrained(cli_export)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "llama.context_length") == 2048
    assert _field(reader, "llama.block_count") == 2 and _field(reader, "llama.attention.head_count_kv") == 2
    assert _field(reader, "tokenizer.ggml.model") == "gpt2" and _field(reader, "tokenizer.ggml.pre") == "gpt-2"
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == 1024 and tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert _field(reader, "tokenizer.ggml.token_type")[:8] == [3, 3, 3, 4, 4, 4, 4, 1]
    assert _field(reader, "tokenizer.ggml.merges") == [" ".join(m) for m in spec["model"]["merges"]]
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert _field(reader, "tokenizer.chat_template") == (cli_export / "chat_template.jinja").read_text()
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.1.ffn_down.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32" and "output.weight" not in types  # tied to token_embd
    state = _merged_state(cli_export)
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    values = gguf.quants.dequantize(embd.data, embd.tensor_type)
    expected = state["model.embed_tokens.weight"].numpy()
    assert values.shape == expected.shape and np.abs(values - expected).max() < 0.02 * np.abs(expected).max()


def _reference_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's row order, written out: head h's row 2j+a is HF's row a*d/2 + j."""
    out, d = np.empty_like(weight), weight.shape[0] // heads
    for h in range(heads):
        for j in range(d // 2):
            for a in range(2):
                out[h * d + 2 * j + a] = weight[h * d + a * d // 2 + j]
    return out


def test_gguf_f16_tensors_and_qk_permutation(sharded_export: Path):
    reader = gguf.GGUFReader(sharded_export / "model-f16.gguf")
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 20 and tensors["blk.0.attn_q.weight"].tensor_type.name == "F16"
    assert list(tensors["blk.0.attn_k.weight"].shape) == [64, 32]  # GGUF lists ne0 (columns) first
    state = {k: v.numpy() for k, v in _merged_state(sharded_export).items()}
    for layer in range(2):
        for kind, heads in (("q", 4), ("k", 2)):
            got = np.asarray(tensors[f"blk.{layer}.attn_{kind}.weight"].data, dtype=np.float32)
            original = state[f"model.layers.{layer}.self_attn.{kind}_proj.weight"]
            np.testing.assert_allclose(got, _reference_permute(original, heads), atol=2e-3, rtol=1e-3)
            assert not np.allclose(got, original, atol=2e-3)
        got = np.asarray(tensors[f"blk.{layer}.ffn_down.weight"].data, dtype=np.float32)
        np.testing.assert_allclose(got, state[f"model.layers.{layer}.mlp.down_proj.weight"], atol=2e-3, rtol=1e-3)


def test_permutation_turns_rotate_half_rope_into_interleaved_rope():
    """Attention scores with HF's RoPE on the original rows equal llama.cpp's RoPE on the permuted rows."""
    from engine.export.gguf import permute_rotary

    d, positions = 8, (3, 11)
    freqs = 1.0 / 10000 ** (np.arange(0, d, 2) / d)
    q, k = np.random.default_rng(0).normal(size=(2, d))

    def hf_rope(x, pos):
        cos, sin = np.cos(pos * np.tile(freqs, 2)), np.sin(pos * np.tile(freqs, 2))
        return x * cos + np.concatenate([-x[d // 2:], x[:d // 2]]) * sin

    def interleaved_rope(x, pos):
        out = x.copy()
        for j, f in enumerate(freqs):
            c, s = np.cos(pos * f), np.sin(pos * f)
            out[2 * j], out[2 * j + 1] = x[2 * j] * c - x[2 * j + 1] * s, x[2 * j] * s + x[2 * j + 1] * c
        return out

    hf = hf_rope(q, positions[0]) @ hf_rope(k, positions[1])
    qp, kp = (permute_rotary(x.reshape(d, 1), 1).ravel() for x in (q, k))
    assert np.isclose(interleaved_rope(qp, positions[0]) @ interleaved_rope(kp, positions[1]), hf)


@pytest.mark.parametrize("arch", ["qwen2", "qwen3"])
def test_gguf_qwen_family_keeps_qk_layout_and_writes_biases_or_norms(arch: str, tiny_model_dir: Path,
                                                                     tmp_path: Path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from engine.export.gguf import write_gguf
    from engine.templates import get_template

    config = AutoConfig.for_model(arch, vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                  max_position_embeddings=512, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    path = write_gguf(model, AutoTokenizer.from_pretrained(tiny_model_dir), get_template("qwen"),
                      tmp_path / "m.gguf", "f32")
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert _field(reader, "general.architecture") == arch and _field(reader, f"{arch}.context_length") == 512
    assert "output.weight" in tensors  # untied
    extra = {"qwen2": "blk.0.attn_q.bias", "qwen3": "blk.0.attn_q_norm.weight"}[arch]
    assert extra in tensors
    # llama.cpp's qwen2/qwen3 rotate halves like transformers: q and k are written unchanged.
    np.testing.assert_array_equal(np.asarray(tensors["blk.0.attn_q.weight"].data),
                                  model.state_dict()["model.layers.0.self_attn.q_proj.weight"].numpy())


@pytest.mark.parametrize(("outtype", "main", "tolerance"), [("q4_0", "Q4_0", 0.15), ("q5_1", "Q5_1", 0.08),
                                                            ("bf16", "BF16", 0.01)])
def test_gguf_block_types_round_trip(outtype: str, main: str, tolerance: float, tiny_model_dir: Path, tmp_path: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.export.gguf import permute_rotary, write_gguf
    from engine.templates import get_template

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    path = write_gguf(model, AutoTokenizer.from_pretrained(tiny_model_dir), get_template("chatml"),
                      tmp_path / "m.gguf", outtype)
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.ffn_up.weight"].tensor_type.name == main
    assert tensors["token_embd.weight"].tensor_type.name == ("BF16" if outtype == "bf16" else "Q8_0")
    assert tensors["output_norm.weight"].tensor_type.name == "F32"
    q = tensors["blk.1.attn_q.weight"]
    values = gguf.quants.dequantize(q.data, q.tensor_type)
    expected = permute_rotary(model.state_dict()["model.layers.1.self_attn.q_proj.weight"].numpy(), 4)
    assert np.abs(values - expected).max() <= tolerance * np.abs(expected).max()


def test_gguf_refuses_unknown_architectures_and_tokenizers():
    from engine.export.gguf import gguf_architecture
    from engine.export.gguf_vocab import pre_tokenizer_name

    assert gguf_architecture(["Qwen2ForCausalLM"]) == ("qwen2", False)
    with pytest.raises(ModelError, match="GPT2LMHeadModel"):
        gguf_architecture(["GPT2LMHeadModel"])
    with pytest.raises(ModelError, match="byte-level BPE"):
        pre_tokenizer_name({"model": {"type": "Unigram"}, "pre_tokenizer": {"type": "Metaspace"}})
    llama3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    spec = {"model": {"type": "BPE"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": llama3}}, {"type": "ByteLevel"}]}}
    assert pre_tokenizer_name(spec) == "llama-bpe"


# ---------------------------------------------------------------- Ollama


def test_modelfile_has_from_template_and_stops(cli_export: Path):
    text = (cli_export / "Modelfile").read_text()
    assert "FROM ./model-q8_0.gguf\n" in text and 'TEMPLATE """' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    values = {"System": "Be brief.", "Messages": [{"Role": "system", "Content": "Be brief."},
                                                  {"Role": "user", "Content": "Hi"}]}
    assert render_go(template, values) == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                                           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_merged_export_without_gguf_has_a_modelfile_for_its_folder(merged_export: Path):
    from engine.export.ollama import stop_words
    from engine.templates import get_template, render_text

    assert not list(merged_export.glob("*.gguf")) and (merged_export / "model.safetensors").is_file()
    lines = [json.loads(line) for line in (merged_export / "trainer_log.jsonl").read_text().splitlines()]
    assert [line["step_name"] for line in lines] == ["load", "merge", "ollama", "card", "done"]
    text = (merged_export / "Modelfile").read_text()
    assert "\nFROM .\n" in text  # Ollama imports the safetensors weights of the folder
    chatml = get_template("chatml")
    stops = [line.split(" ", 2)[2] for line in text.splitlines() if line.startswith("PARAMETER stop ")]
    assert [json.loads(stop) for stop in stops] == stop_words(chatml, "<|im_end|>") == ["<|im_end|>", "<|im_start|>"]
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    messages = [{"Role": "user", "Content": "Hi"}, {"Role": "assistant", "Content": "Hello!"},
                {"Role": "user", "Content": "2+2?"}]
    expected = render_text(chatml, [{"role": m["Role"], "content": m["Content"]} for m in messages])
    assert render_go(template, {"System": "", "Messages": messages}) == expected
    assert "ollama create export -f Modelfile" in (merged_export / "README.md").read_text()
    assert json.loads((merged_export / "export_results.json").read_text())["modelfile"] == "Modelfile"


def test_modelfile_step_follows_export_ollama_and_skips_gptq():
    from engine.export.run import plan_steps

    def steps(**values: object) -> list[str]:
        return plan_steps(load_config(None, {"model_name_or_path": "demo", "export_dir": "x", **values}))

    assert steps() == ["load", "reference", "merge", "ollama", "parity", "card"]
    assert "ollama" not in steps(export_ollama=False)
    assert "ollama" not in steps(export_quantization_bit=4, export_quantization_dataset="c.jsonl")
    assert steps(export_gguf="q8_0", export_parity=False) == ["load", "merge", "gguf", "ollama", "card"]


CONVERSATION = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "2+2?"}]


@pytest.mark.parametrize("name", ["chatml", "qwen", "qwen3", "llama3", "llama2", "mistral", "default", "alpaca",
                                  "vicuna"])
@pytest.mark.parametrize("system", [None, "Be brief."])
def test_ollama_template_renders_like_the_studio_template(name: str, system: str | None):
    from engine.export.ollama import go_template
    from engine.templates import get_template, render_text

    template = get_template(name)
    tokenizer = SimpleNamespace(bos_token="<s>", eos_token="</s>")
    expected = render_text(template, CONVERSATION, system=system, tokenizer=tokenizer)
    effective = system or template.default_system  # Ollama fills .System from the Modelfile's SYSTEM
    messages = ([{"Role": "system", "Content": system}] if system else []) + [
        {"Role": m["role"], "Content": m["content"]} for m in CONVERSATION]
    source = go_template(template, bos="<s>", eos="</s>")
    assert render_go(source, {"System": effective, "Messages": messages}) == expected


def test_ollama_template_tool_results_and_runtime_bos():
    from engine.export.ollama import go_template
    from engine.templates import get_template, render_text

    qwen = get_template("qwen")
    turns = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "Checking."},
             {"role": "observation", "content": "sunny"}]
    ollama = [{"Role": "user", "Content": "Weather?"}, {"Role": "assistant", "Content": "Checking."},
              {"Role": "tool", "Content": "sunny"}]
    assert render_go(go_template(qwen), {"System": qwen.default_system, "Messages": ollama}) == render_text(qwen, turns)
    llama3 = get_template("llama3")
    source = go_template(llama3, bos="<|begin_of_text|>", add_bos=True)  # llama.cpp adds the bos token itself
    expected = render_text(llama3, CONVERSATION).removeprefix("<|begin_of_text|>")
    assert render_go(source, {"System": "", "Messages": [{"Role": m["role"], "Content": m["content"]}
                                                         for m in CONVERSATION]}) == expected


# ---------------------------------------------------------------- hub, GPTQ


def test_hub_upload_offline_and_without_token_give_clear_errors(tmp_path: Path, monkeypatch, tiny_model_dir: Path):
    from engine.export import check_export
    from engine.export.hub import upload_to_hub

    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "export_dir": str(tmp_path / "out"),
                                "export_hub_model_id": "someone/tiny"})
    with pytest.raises(StudioError) as err:
        upload_to_hub(tmp_path, config)
    assert err.value.key == "export_hub_offline" and "HF_HUB_OFFLINE" in err.value.message()
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ConfigError) as err:
        check_export(config)
    assert err.value.key == "export_hub_no_token" and "HF_TOKEN" in err.value.message()


def test_gptq_calibration_text_and_missing_packages(tmp_path: Path, tiny_model_dir: Path):
    import importlib.util

    from engine.export.gptq import calibration_texts, check_gptq_available

    data = tmp_path / "calib.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"sample {i}"}) for i in range(5)), encoding="utf-8")
    config = load_config(None, {"model_name_or_path": str(tiny_model_dir), "export_quantization_bit": 4,
                                "export_quantization_dataset": str(data), "export_quantization_nsamples": 3})
    assert calibration_texts(config) == ["sample 0", "sample 1", "sample 2"]
    if importlib.util.find_spec("optimum") and importlib.util.find_spec("gptqmodel") and torch.cuda.is_available():
        pytest.skip("GPTQ packages and a GPU are present")
    with pytest.raises(ModelError) as err:
        check_gptq_available()
    assert err.value.key in ("export_gptq_not_installed", "export_gptq_needs_gpu")
