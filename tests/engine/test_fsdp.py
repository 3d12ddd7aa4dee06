"""FSDP2 through transformers' Trainer: the settings the engine passes, the refusal on a machine without GPUs, and
(with two GPUs) two ranks training one sharded model.

accelerate 1.16 turns FSDP on only for GPU-like devices: with CPU processes it runs plain DDP and drops the FSDP
plugin without a word, although PyTorch's FSDP2 (`fully_shard`) itself works over gloo. So on the CPU the engine
refuses `fsdp` before any process starts rather than train something other than what was asked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.runfolder import read_trainer_log
from engine.train.trainer_setup import check_fsdp, fsdp_arguments
from tests.engine.test_train_processes import ROOT, base_overrides, engine_command, free_port


def config_with(*overrides: str):
    return load_config(None, ["model_name_or_path=demo", *overrides])


@pytest.fixture()
def with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend a GPU is there, to see the arguments a GPU machine gets."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_full_shard_becomes_fsdp2_settings(with_cuda):
    assert fsdp_arguments(config_with()) == {}
    assert fsdp_arguments(config_with("fsdp=full_shard auto_wrap")) == {
        "fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True}}
    assert fsdp_arguments(config_with("fsdp=shard_grad_op auto_wrap offload"))["fsdp_config"] == {
        "version": 2, "reshard_after_forward": False, "cpu_offload": True}


def test_an_optimizer_of_our_own_is_refused_with_fsdp(with_cuda):
    """The Trainer refuses a ready-made optimizer under FSDP (a RuntimeError deep in its constructor): say so first."""
    with pytest.raises(ConfigError) as info:
        fsdp_arguments(config_with("fsdp=full_shard auto_wrap", "use_muon=true"))
    assert info.value.key == "optimizer_with_fsdp" and "Muon" in str(info.value)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_an_fsdp_config_file_is_read_and_wins(with_cuda, tmp_path: Path, suffix: str):
    path = tmp_path / f"fsdp{suffix}"
    path.write_text(json.dumps({"fsdp_version": 2, "reshard_after_forward": False, "activation_checkpointing": True}))
    args = fsdp_arguments(config_with("fsdp=full_shard auto_wrap", f"fsdp_config={path}"))
    assert args == {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": False,
                                                  "activation_checkpointing": True}}
    # Words FSDP2 has no setting for (hybrid_shard is FSDP1's) go to transformers as written, which judges them.
    assert fsdp_arguments(config_with("fsdp=hybrid_shard", f"fsdp_config={path}"))["fsdp"] == "hybrid_shard"


def test_transformers_selects_fsdp2_from_these_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import torch
    from transformers import TrainingArguments  # imported before the GPU is faked: its import looks at CUDA

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    fsdp = fsdp_arguments(config_with("fsdp=full_shard auto_wrap"))
    monkeypatch.undo()
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, **fsdp)
    plugin = args.fsdp_plugin_args
    assert plugin["fsdp_version"] == 2 and plugin["reshard_after_forward"] is True
    assert plugin["state_dict_type"] == "FULL_STATE_DICT"  # the saved weights are one file, gathered on rank 0


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without GPUs")
def test_fsdp_without_a_gpu_is_refused_with_a_reason():
    with pytest.raises(ConfigError) as info:
        check_fsdp(config_with("fsdp=full_shard auto_wrap"))
    assert info.value.key == "fsdp_needs_gpu"
    assert "DDP" in str(info.value) and "fsdp" in str(info.value)
    check_fsdp(config_with())  # no FSDP: nothing to refuse


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without GPUs")
def test_two_cpu_processes_with_fsdp_stop_before_launch(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "fsdp"
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(engine_command("train", *base_overrides(tiny_model_dir, out), "finetuning_type=full",
                                           "max_samples=16", "num_train_epochs=1", "fsdp=full_shard auto_wrap"),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "torch.distributed.run" not in result.stderr, result.stderr[-3000:]
    assert "FSDP, which needs NVIDIA GPUs" in result.stderr
    assert not (out / "trainer_log.jsonl").exists(), "nothing trained"


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(__import__("torch").cuda.device_count() < 2, reason="needs two CUDA devices")
def test_fsdp2_two_gpu_ranks(tiny_model_dir: Path, tmp_path: Path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "fsdp"
    env = {**os.environ, "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2", "MASTER_PORT": str(free_port())}
    result = subprocess.run(engine_command("train", *base_overrides(tiny_model_dir, out), "finetuning_type=full",
                                           "max_samples=16", "num_train_epochs=1", "fsdp=full_shard auto_wrap"),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Rank 0 of 2" in output and "Rank 1 of 2" in output, "both ranks train"
    assert "DDP constructor" not in output, "sharded with FSDP, not replicated with DDP"
    records = read_trainer_log(out)[0]
    assert [r["current_steps"] for r in records] == [1, 2, 3, 4], "rank 0 alone logs each step"
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    trained = load_file(out / "model.safetensors")  # the full state dict, gathered on rank 0
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    assert trained.keys() <= base.keys() and any(not (trained[k] == base[k]).all() for k in trained)
    AutoModelForCausalLM.from_pretrained(out)


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without GPUs")
def test_one_cpu_process_with_fsdp_fails_with_the_reason(tiny_model_dir: Path, tmp_path: Path):
    """Without torchrun (one process) the refusal comes from the Trainer's arguments and ends the run as failed."""
    from engine.train.run import run_training
    from engine.validation import validate_config

    out = tmp_path / "fsdp"
    config = validate_config(load_config(None, [*base_overrides(tiny_model_dir, out), "finetuning_type=full",
                                                "max_steps=2", "fsdp=full_shard auto_wrap"]))
    assert run_training(config) != 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "FSDP, which needs NVIDIA GPUs" in status["error"]
    assert not (out / "trainer_log.jsonl").exists()
