"""End to end on the tiny model: pt and sft × full / freeze / lora / qlora, in-process, a few steps each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.train.run import run_training
from engine.validation import validate_config

pytestmark = pytest.mark.slow

COMMON_FILES = {"config.yaml", "trainer_log.jsonl", "running_log.txt", "status.json", "all_results.json",
                "training_loss.png", "train_results.json", "trainer_state.json", "training_args.bin", "tokenizer.json", "tokenizer_config.json",
                "chat_template.jinja", ".lock"}
FULL_FILES = {"config.json", "generation_config.json", "model.safetensors"}
LORA_FILES = {"adapter_config.json", "adapter_model.safetensors", "README.md"}


def train(model_dir: Path, out: Path, *overrides: str) -> Path:
    config = validate_config(load_config(None, [
        f"model_name_or_path={model_dir}", f"output_dir={out}", "max_steps=3", "logging_steps=1",
        "per_device_train_batch_size=4", "learning_rate=1e-3", "cutoff_len=128", "save_steps=1000", "seed=7",
        *overrides]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


def load_tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def changed(a, b) -> bool:
    import torch

    return not torch.equal(a.float(), b.float())


def check_run_folder(out: Path, weight_files: set[str], steps: int = 3) -> list[dict]:
    files = {p.name for p in out.iterdir() if p.is_file()}
    assert files == COMMON_FILES | weight_files
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [f"checkpoint-{steps}"]
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0 and status["error"] is None
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in records] == list(range(1, steps + 1))
    for key in ("total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time",
                "throughput", "total_tokens", "grad_norm"):
        assert key in records[-1], key
    assert records[-1]["percentage"] == 100.0
    return records


@pytest.mark.parametrize("stage", ["sft", "pt"])
def test_full(stage: str, tiny_model_dir: Path, tmp_path: Path):
    data = "dataset=identity" if stage == "sft" else "dataset=c4_demo"
    out = train(tiny_model_dir, tmp_path / "run", f"stage={stage}", "finetuning_type=full", data, "max_samples=24")
    check_run_folder(out, FULL_FILES)
    before, after = load_tensors(tiny_model_dir / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert all(changed(before[k], after[k]) for k in before if "layers" in k and "weight" in k)


@pytest.mark.parametrize("stage", ["sft", "pt"])
def test_freeze_trains_only_the_last_layer(stage: str, tiny_model_dir: Path, tmp_path: Path):
    data = "dataset=identity" if stage == "sft" else "dataset=c4_demo"
    out = train(tiny_model_dir, tmp_path / "run", f"stage={stage}", "finetuning_type=freeze",
                "freeze_trainable_layers=1", data, "max_samples=24")
    check_run_folder(out, FULL_FILES)
    before, after = load_tensors(tiny_model_dir / "model.safetensors"), load_tensors(out / "model.safetensors")
    last = [k for k in before if ".layers.1." in k]
    frozen = [k for k in before if ".layers.1." not in k]
    assert last and all(changed(before[k], after[k]) for k in last if k.endswith("proj.weight"))
    assert frozen and not any(changed(before[k], after[k]) for k in frozen)


@pytest.mark.parametrize("stage", ["sft", "pt"])
@pytest.mark.parametrize("quantization", [None, 4])
def test_lora_and_qlora(stage: str, quantization: int | None, tiny_model_dir: Path, tmp_path: Path):
    data = "dataset=identity" if stage == "sft" else "dataset=c4_demo"
    extra = [f"quantization_bit={quantization}"] if quantization else []
    out = train(tiny_model_dir, tmp_path / "run", f"stage={stage}", "finetuning_type=lora", "lora_rank=4", data,
                "max_samples=24", *extra)
    check_run_folder(out, LORA_FILES)
    adapter = load_tensors(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b), "B starts at zero: training must move it"
    saved = json.loads((out / "adapter_config.json").read_text())
    assert saved["r"] == 4
    config_text = (out / "config.yaml").read_text()
    assert "template: chatml" in config_text or stage == "pt"


def test_sft_lora_learns(tiny_model_dir: Path, tmp_path: Path):
    out = train(tiny_model_dir, tmp_path / "run", "finetuning_type=lora", "lora_rank=8", "dataset=identity",
                "max_samples=16", "max_steps=30", "learning_rate=3e-2", "per_device_train_batch_size=8")
    losses = [json.loads(line)["loss"] for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.8 * first, (first, last)


def test_packed_sft_runs_and_counts_real_tokens(tiny_model_dir: Path, tmp_path: Path):
    out = train(tiny_model_dir, tmp_path / "run", "finetuning_type=lora", "dataset=identity", "packing=true",
                "max_samples=24", "cutoff_len=256")
    records = check_run_folder(out, LORA_FILES)
    assert records[-1]["total_tokens"] > 0
