"""A LLaMA-Factory user's configs run unchanged: train (LoRA, DPO, KTO, reward, pre-training, QLoRA), predict,
merge and chat, each changed only in model, output folder, step count and bf16, as on a CPU machine."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.train.run import run_training
from engine.validation import validate_config

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs" / "move_in"
TRAINING = ["lora_sft", "lora_dpo", "lora_kto", "lora_reward", "lora_pretrain", "qlora_bnb"]

pytestmark = pytest.mark.slow


def cpu_changes(model: Path, out: Path, **extra: object) -> dict[str, object]:
    """What a CPU machine without the hub changes: the model, the output folder, the steps, bf16."""
    return {"model_name_or_path": str(model), "output_dir": str(out), "max_steps": 2, "bf16": False, **extra}


def train(name: str, model: Path, out: Path, **extra: object) -> Path:
    config = validate_config(load_config(CONFIGS / f"{name}.yaml", cpu_changes(model, out, **extra)))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train("lora_sft", tiny_model_dir, tmp_path_factory.mktemp("move-in") / "sft")


def test_lora_sft_runs_with_its_template_workers_and_trainer_arguments(sft_run: Path):
    status = json.loads((sft_run / "status.json").read_text())
    assert status["state"] == "finished"
    saved = load_config(sft_run / "config.yaml")
    assert saved.model.template == "qwen3_nothink"
    assert saved.passthrough["gradient_checkpointing_kwargs"] == {"use_reentrant": False}
    assert json.loads((sft_run / "trainer_state.json").read_text())["global_step"] == 2
    assert json.loads((sft_run / "trainer_log.jsonl").read_text().splitlines()[0])["total_steps"] == 2
    assert (sft_run / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("name", [n for n in TRAINING if n != "lora_sft"])
def test_other_training_configs_run(name: str, tiny_model_dir: Path, tmp_path: Path):
    out = train(name, tiny_model_dir, tmp_path / name)
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    assert (out / "adapter_model.safetensors").is_file()


def test_kto_with_batch_one_keeps_the_examples_per_step(tiny_model_dir: Path, tmp_path: Path):
    out = train("lora_kto", tiny_model_dir, tmp_path / "kto", max_steps=1)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 2 and state["global_step"] == 1  # batch 1 × accumulation 8 ran as 2 × 4


def test_predict_from_eval_dataset_alone(sft_run: Path, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "predict"
    config = validate_config(load_config(CONFIGS / "predict.yaml", {
        "model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(sft_run), "output_dir": str(out),
        "max_samples": 4, "max_new_tokens": 8}))
    assert config.training.do_train is False and config.data.dataset is None
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    lines = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and set(lines[0]) >= {"prompt", "predict", "label"}  # 4 rows of each eval dataset


def test_deepspeed_without_the_package_stops_before_loading(tiny_model_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    monkeypatch.chdir(CONFIGS)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        validate_config(load_config(CONFIGS / "full_sft_deepspeed.yaml", cpu_changes(tiny_model_dir, tmp_path)))
    assert info.value.key == "deepspeed_not_installed" and "pip install" in info.value.message()


def test_deepspeed_without_a_gpu_stops_before_loading(tiny_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    import importlib.util

    import torch

    monkeypatch.chdir(CONFIGS)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "deepspeed" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "full"
    config = validate_config(load_config(CONFIGS / "full_sft_deepspeed.yaml", cpu_changes(tiny_model_dir, out)))
    assert run_training(config) != 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "GPU" in status["error"]
    assert "Traceback" not in (out / "running_log.txt").read_text()


def test_merge_writes_the_model_and_a_modelfile(sft_run: Path, tiny_model_dir: Path, tmp_path: Path):
    from engine.export import run_export

    out = tmp_path / "merged"
    config = load_config(CONFIGS / "merge_lora.yaml", {"model_name_or_path": str(tiny_model_dir),
                                                         "adapter_name_or_path": str(sft_run), "export_dir": str(out)})
    assert run_export(config) == 0
    assert (out / "model.safetensors").is_file() and (out / "Modelfile").is_file()


def test_inference_config_answers(sft_run: Path, tiny_model_dir: Path):
    from engine.inference.chat import run_chat
    from engine.inference.engine import load_backend

    config = validate_config(load_config(CONFIGS / "inference.yaml", {
        "model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(sft_run), "max_new_tokens": 8}),
        "infer")
    backend = load_backend(config)
    answers = iter(["Hello", "exit"])
    out = io.StringIO()
    try:
        assert run_chat(backend, read=lambda prompt: next(answers), out=out, err=io.StringIO()) == 0
    finally:
        backend.close()
    assert "Assistant:" in out.getvalue()
