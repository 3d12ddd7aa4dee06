"""What this machine can run, with nvidia-smi, the driver's /proc folder and installed packages faked."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config.training import REPORT_TO
from engine.errors import load_locale
from studio import capabilities
from studio.capabilities import (
    BOOSTER_PACKAGES,
    PACKAGES,
    REPORT_TO_PACKAGES,
    booster_availability,
    detect,
    device_count,
    infer_backend_availability,
    package_availability,
    quantization_availability,
    report_to_availability,
    summary_key,
)


@pytest.fixture()
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Fake a machine: `machine(gpus=2, packages={...})`; gpus=None leaves nvidia-smi off PATH."""

    def fake(gpus: int | None = 0, packages: set[str] = frozenset(), proc_gpus: int = 0) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        if gpus is not None:
            lines = "".join(f"echo 'GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i:04d})'\n" for i in range(gpus))
            body = lines if gpus else "echo 'No devices were found'\nexit 6\n"
            script = bin_dir / "nvidia-smi"
            script.write_text(f"#!/bin/sh\n{body}")
            script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setenv("PATH", str(bin_dir))
        proc = tmp_path / "proc_gpus"
        proc.mkdir(exist_ok=True)
        for i in range(proc_gpus):
            (proc / f"0000:0{i}:00.0").mkdir()
        monkeypatch.setattr(capabilities, "PROC_NVIDIA_GPUS", proc)
        monkeypatch.setattr(capabilities, "find_spec", lambda name: object() if name in packages else None)
        detect.cache_clear()

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield fake
    detect.cache_clear()


def test_cpu_machine_without_packages(machine):
    machine(gpus=None)
    info = detect()
    assert info == {"cuda": False, "gpu_count": 0, "packages": dict.fromkeys(PACKAGES, False)}
    assert device_count() == 0
    boosters = booster_availability()
    assert boosters["auto"] == boosters["sdpa"] == (True, None)
    assert boosters["flashattn2"] == boosters["unsloth"] == boosters["liger_kernel"] == (False, "caps.needs_gpu")
    assert quantization_availability() == (False, "caps.needs_package.bitsandbytes")
    assert report_to_availability()["wandb"] == (False, "caps.needs_package.trackers")
    assert report_to_availability()["none"] == (True, None)
    assert infer_backend_availability() == {"huggingface": (True, None), "hf": (True, None),
                                            "vllm": (False, "caps.needs_gpu")}
    assert summary_key() == ("caps.no_gpu", {})


def test_gpu_machine_with_some_packages(machine):
    machine(gpus=2, packages={"flash_attn", "bitsandbytes", "tensorboard"})
    assert detect()["cuda"] is True and device_count() == 2
    boosters = booster_availability()
    assert boosters["flashattn2"] == (True, None)
    assert boosters["unsloth"] == (False, "caps.needs_package.unsloth")
    assert boosters["liger_kernel"] == (False, "caps.needs_package.liger")
    assert quantization_availability() == (True, None)
    trackers = report_to_availability()
    assert trackers["tensorboard"] == (True, None)
    assert trackers["swanlab"] == (False, "caps.needs_package.trackers")
    assert package_availability("deepspeed") == (False, "caps.needs_package.deepspeed")
    assert summary_key() == ("caps.gpus_found", {"count": 2})


def test_gpu_packages_need_cuda_even_when_installed(machine):
    machine(gpus=0, packages=set(PACKAGES))
    assert all(ok for ok, _ in report_to_availability().values())
    assert quantization_availability() == (True, None)  # bitsandbytes also runs on the CPU
    assert booster_availability()["unsloth"] == (False, "caps.needs_gpu")
    assert package_availability("galore_torch") == (True, None)


def test_proc_fallback_and_visible_devices(machine, monkeypatch: pytest.MonkeyPatch):
    machine(gpus=None, proc_gpus=4)
    assert device_count() == 4
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    detect.cache_clear()
    assert device_count() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    detect.cache_clear()
    assert device_count() == 0 and detect()["cuda"] is False


def test_detect_is_cached(machine, monkeypatch: pytest.MonkeyPatch):
    machine(gpus=1)
    assert device_count() == 1
    monkeypatch.setenv("PATH", "")  # nvidia-smi is gone, but the cached answer does not look again
    assert device_count() == 1


def test_every_reason_has_a_text():
    texts = load_locale("en")
    reasons = {"caps.needs_gpu", "caps.no_gpu", "caps.gpus_found"}
    reasons |= {f"caps.needs_package.{extra}" for extra in PACKAGES.values()}
    assert reasons <= set(texts)
    assert "{count}" in texts["caps.gpus_found"]
    assert set(BOOSTER_PACKAGES) == {"auto", "sdpa", "flashattn2", "unsloth", "liger_kernel"}
    assert set(REPORT_TO_PACKAGES) == set(REPORT_TO)


def test_real_detection_imports_nothing_heavy():
    code = ("import sys, studio.capabilities as c; c.detect(); c.booster_availability(); "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert not {"torch", "transformers", "peft", "trl", "datasets", "gradio", "bitsandbytes", "vllm"} & loaded


def test_training_memory_is_the_gpus_or_the_computers(machine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16303700 kB\nMemFree:         1000000 kB\n")
    monkeypatch.setattr(capabilities, "PROC_MEMINFO", meminfo)
    machine(gpus=None)
    capabilities.training_memory.cache_clear()
    memory, on_gpu = capabilities.training_memory()
    assert on_gpu is False and memory == pytest.approx(15.55, abs=0.01)
    # two 80 GB cards, one hidden by CUDA_VISIBLE_DEVICES
    machine(gpus=2)
    script = tmp_path / "bin" / "nvidia-smi"
    script.write_text("#!/bin/sh\ncase \"$1\" in --query-gpu*) echo 81559; echo 81559;; "
                      "*) echo 'GPU 0: H100'; echo 'GPU 1: H100';; esac\n")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    detect.cache_clear()
    capabilities.training_memory.cache_clear()
    memory, on_gpu = capabilities.training_memory()
    assert on_gpu is True and memory == pytest.approx(79.65, abs=0.01)
    capabilities.training_memory.cache_clear()


def test_memory_needed_grows_with_the_model():
    assert capabilities.memory_needed_gb(7, on_gpu=True) == 17  # LLaMA-Factory's table: 16 GB for 7B LoRA
    assert capabilities.memory_needed_gb(7, on_gpu=False) == 33  # float32 on the processor
    assert capabilities.memory_needed_gb(0.135, on_gpu=False) == 2


def test_model_downloaded_reads_the_cache_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    assert not capabilities.model_downloaded("Qwen/Qwen3-0.6B")
    snapshot = tmp_path / "hf" / "models--Qwen--Qwen3-0.6B" / "snapshots"
    snapshot.mkdir(parents=True)
    assert not capabilities.model_downloaded("Qwen/Qwen3-0.6B")  # an interrupted download holds no snapshot
    (snapshot / "abc123").mkdir()
    assert capabilities.model_downloaded("Qwen/Qwen3-0.6B")
    assert not capabilities.model_downloaded("Qwen/Qwen3-0.6B", "modelscope")
    (tmp_path / "ms" / "models" / "Qwen" / "Qwen3-0.6B").mkdir(parents=True)
    (tmp_path / "ms" / "models" / "Qwen" / "Qwen3-0.6B" / "config.json").write_text("{}")
    assert capabilities.model_downloaded("Qwen/Qwen3-0.6B", "modelscope")
