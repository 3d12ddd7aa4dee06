"""The offline demo model: a tiny Llama + byte-level BPE tokenizer built locally and deterministically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.model import demo
from engine.model.demo import (
    ADDED_TOKENS,
    DEMO_MODEL_NAME,
    SPECIAL_TOKENS,
    build_demo_model,
    is_complete_build,
    resolve_model_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

SMALL = {
    "hidden_size": 64,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_position_embeddings": 256,
}

EN = "Hello! I am a helpful assistant, and I can answer questions about the weather."
ZH = "你好，我是一个乐于助人的人工智能助手。今天天气很好。"


def _write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {"instruction": "Who are you?", "input": "", "output": "I am a helpful assistant. How can I help you today?"},
        {"instruction": "Say hello.", "input": "", "output": "Hello! It is nice to meet you. " * 3},
        {"instruction": "你是谁？", "input": "", "output": "我是一个乐于助人的人工智能助手，很高兴为你服务。"},
        {"instruction": "今天天气怎么样？", "input": "", "output": "今天天气很好，阳光明媚，适合出去散步。"},
    ]
    (folder / "alpaca_demo.json").write_text(json.dumps(rows * 5, ensure_ascii=False, indent=2), encoding="utf-8")
    convs = [
        {
            "conversations": [
                {"from": "human", "value": "What is the weather like?"},
                {"from": "gpt", "value": "Sunny."},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Tell me a story about a dragon."},
                {"role": "assistant", "content": "Once upon a time, a dragon lived in the mountains."},
            ]
        },
    ]
    (folder / "multiturn_demo.jsonl").write_text(
        "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs * 5), encoding="utf-8"
    )
    (folder / "dataset_info.json").write_text('{"ignored": {"file_name": "never used in training"}}', encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return _write_data(tmp_path_factory.mktemp("demo_data"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir) -> Path:
    return build_demo_model(tmp_path_factory.mktemp("demo_build") / "demo", data_dir=data_dir, **SMALL)


@pytest.fixture(scope="module")
def loaded(built):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(built), AutoModelForCausalLM.from_pretrained(built)


def test_files(built):
    names = set(os.listdir(built))
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "studio_model.json",
        "build_info.json",
    } <= names
    studio = json.loads((built / "studio_model.json").read_text())
    assert studio["template"] == "chatml" and studio["builder"] == "demo"
    info = json.loads((built / "build_info.json").read_text())
    assert [f["name"] for f in info["data_files"]] == ["alpaca_demo.json", "multiturn_demo.jsonl"]
    assert info["params"]["vocab_size"] == 1000
    assert is_complete_build(built, info["fingerprint"])
    assert json.loads((built / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    assert not list(built.parent.glob(".demo.building-*"))


def test_load_and_forward(loaded):
    import torch

    tok, model = loaded
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.tie_word_embeddings
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert model.dtype == torch.float32
    assert len(tok) <= model.config.vocab_size == 1000
    ids = tok(EN, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], 1000)
    assert torch.isfinite(logits).all()
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids.shape[1] + 3


def test_special_tokens_and_eos(loaded):
    tok, model = loaded
    for i, token in enumerate((*SPECIAL_TOKENS, *ADDED_TOKENS)):
        assert tok.encode(token, add_special_tokens=False) == [i]
        assert tok.convert_tokens_to_ids(token) == i
    assert tok.encode("<tool_call>{}</tool_call>", add_special_tokens=False)[0] == 5
    im_end, eot = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token == tok.pad_token == "<|endoftext|>" and tok.bos_token is None
    assert model.config.eos_token_id == im_end
    assert model.config.pad_token_id == eot and model.config.bos_token_id is None
    assert list(model.generation_config.eos_token_id) == [im_end, eot]
    assert model.generation_config.pad_token_id == eot
    # The think/tool tags are not special: they survive skip_special_tokens.
    ids = tok.encode("<|im_start|>assistant\n<think>hm</think>ok<|im_end|>", add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == "assistant\n<think>hm</think>ok"


def test_round_trip(loaded):
    tok, _ = loaded
    for text in (EN, ZH, "Mixed 中英 text\n\twith  spaces, émojis 🙂 and <think>tags</think>."):
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # Trained on the data: common words are merged, not spelled out byte by byte.
    assert len(tok.encode("Hello assistant", add_special_tokens=False)) <= 4


def test_chat_template(loaded):
    tok, _ = loaded
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi 你好"},
        {"role": "assistant", "content": "Hello!"},
    ]
    expected = (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nHi 你好<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
    )
    assert tok.apply_chat_template(messages, tokenize=False) == expected
    assert (
        tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
        == "<|im_start|>user\nHi 你好<|im_end|>\n<|im_start|>assistant\n"
    )


def test_second_build_is_noop_and_force_rebuilds(built, data_dir):
    stamps = {name: (built / name).stat().st_mtime_ns for name in os.listdir(built)}
    inode = built.stat().st_ino
    assert build_demo_model(built, data_dir=data_dir, **SMALL) == built
    assert {name: (built / name).stat().st_mtime_ns for name in os.listdir(built)} == stamps
    assert built.stat().st_ino == inode

    before = (built / "model.safetensors").read_bytes()
    assert build_demo_model(built, data_dir=data_dir, force=True, **SMALL) == built
    assert built.stat().st_ino != inode  # a fresh folder was renamed into place
    assert (built / "model.safetensors").read_bytes() == before
    assert is_complete_build(built)
    assert not list(built.parent.glob(".demo.building-*"))


def test_changes_rebuild(tmp_path, data_dir):
    out = tmp_path / "demo"
    build_demo_model(out, data_dir=data_dir, **SMALL)
    first = json.loads((out / "build_info.json").read_text())["fingerprint"]
    weights = (out / "model.safetensors").read_bytes()

    build_demo_model(out, data_dir=data_dir, seed=7, **SMALL)
    assert json.loads((out / "build_info.json").read_text())["fingerprint"] != first
    assert (out / "model.safetensors").read_bytes() != weights

    data2 = _write_data(tmp_path / "data2")
    (data2 / "extra.json").write_text('["More text for the tokenizer."]', encoding="utf-8")
    build_demo_model(out, data_dir=data2, seed=7, **SMALL)
    info = json.loads((out / "build_info.json").read_text())
    assert [f["name"] for f in info["data_files"]][-1] == "multiturn_demo.jsonl"
    assert "extra.json" in [f["name"] for f in info["data_files"]]


def test_replaces_partial_build_but_not_user_folder(tmp_path, data_dir):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "build_info.json").write_text('{"builder": "demo"}')
    (partial / "config.json").write_text("{}")
    assert not is_complete_build(partial)
    build_demo_model(partial, data_dir=data_dir, **SMALL)
    assert is_complete_build(partial)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(ModelError) as err:
        build_demo_model(mine, data_dir=data_dir, **SMALL)
    assert err.value.key == "demo_dir_not_ours" and not err.value.message().startswith("error.")
    assert (mine / "notes.txt").read_text() == "precious"


def test_data_errors(tmp_path):
    with pytest.raises(ModelError) as err:
        build_demo_model(tmp_path / "out", data_dir=tmp_path / "nowhere", **SMALL)
    assert err.value.key == "demo_data_missing" and "nowhere" in err.value.message()

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.json").write_text('[{"instruction": "unterminated', encoding="utf-8")
    with pytest.raises(ModelError) as err:
        build_demo_model(tmp_path / "out", data_dir=bad, **SMALL)
    assert err.value.key == "demo_data_invalid" and "broken.json" in err.value.message()
    assert not (tmp_path / "out").exists()

    with pytest.raises(ValueError):
        build_demo_model(tmp_path / "out", data_dir=bad, hidden_size=65, num_heads=4)


def test_deterministic_and_concurrent_across_processes(built, data_dir, tmp_path):
    """Two processes build into the same new folder at once: both return it, complete and byte-identical."""
    out = tmp_path / "other" / "demo"
    code = textwrap.dedent(
        f"""
        from engine.model.demo import build_demo_model
        print(build_demo_model({str(out)!r}, data_dir={str(data_dir)!r}, **{SMALL!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": "random"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert stdout.strip().splitlines()[-1] == str(out)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
    assert not list(out.parent.glob(".demo.building-*"))


def test_import_is_light():
    code = "import sys, engine.model.demo; print(sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_main_and_resolve(tmp_path, monkeypatch, capsys, data_dir):
    monkeypatch.setattr(demo, "resource_dir", lambda name: data_dir)
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))

    assert resolve_model_path("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert resolve_model_path("./demo") == "./demo"
    path = resolve_model_path(DEMO_MODEL_NAME)
    assert Path(path) == tmp_path / "home" / "saves" / "models" / "demo"
    assert is_complete_build(path)
    info = json.loads((Path(path) / "build_info.json").read_text())
    assert info["params"]["hidden_size"] == 128 and info["params"]["vocab_size"] == 4096

    capsys.readouterr()
    assert demo.main([]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == path

    target = tmp_path / "cli"
    assert demo.main([str(target), "--force"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(target)
    assert is_complete_build(target)


def test_shipped_data_builds(tmp_path):
    from engine.paths import resource_dir

    if not demo._data_files(resource_dir("data")):
        pytest.skip("no demo datasets shipped yet")
    out = build_demo_model(tmp_path / "demo", **SMALL)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.decode(tok.encode(ZH, add_special_tokens=False)) == ZH
