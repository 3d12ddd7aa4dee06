"""What this machine can run: NVIDIA GPUs and the optional packages, found without importing torch or the packages.

The studio greys out, or explains, the choices that would fail: FlashAttention on a machine without a GPU, 4-bit
quantization without bitsandbytes, a tracker that is not installed. Reasons are locale keys (`caps.…`) that read
well on their own, so a label can append `t(reason, lang)` as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

# Optional packages: import name → the pip extra of llm-studio that installs it.
PACKAGES: dict[str, str] = {
    "bitsandbytes": "bitsandbytes",
    "flash_attn": "flash-attn",
    "unsloth": "unsloth",
    "liger_kernel": "liger",
    "vllm": "vllm",
    "deepspeed": "deepspeed",
    "galore_torch": "galore",
    "badam": "badam",
    "tensorboard": "trackers",
    "wandb": "trackers",
    "mlflow": "trackers",
    "swanlab": "trackers",
}
# These run only on an NVIDIA GPU: installed without one, they are still unusable.
NEEDS_CUDA = frozenset({"flash_attn", "unsloth", "liger_kernel", "vllm"})
# Where the NVIDIA driver lists one folder per GPU, for machines without nvidia-smi on PATH.
PROC_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")

Availability = tuple[bool, str | None]

# Choice → the package it needs (None: always available).
BOOSTER_PACKAGES: dict[str, str | None] = {
    "auto": None, "sdpa": None, "flashattn2": "flash_attn", "unsloth": "unsloth", "liger_kernel": "liger_kernel",
}
REPORT_TO_PACKAGES: dict[str, str | None] = {
    "none": None, "all": None,
    "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "swanlab": "swanlab",
}
INFER_BACKEND_PACKAGES: dict[str, str | None] = {"huggingface": None, "hf": None, "vllm": "vllm"}


def _installed(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):  # a broken install, or a module whose __spec__ is None
        return False


def _gpus_from_nvidia_smi() -> int | None:
    """GPUs `nvidia-smi -L` lists, or None when it is not installed or does not answer."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return 0  # installed but no driver or no device: the usual message is "No devices were found"
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _gpus_from_proc() -> int:
    try:
        return sum(1 for entry in PROC_NVIDIA_GPUS.iterdir() if entry.is_dir())
    except OSError:
        return 0


def _visible(count: int) -> int:
    """How many of `count` GPUs this process may use under CUDA_VISIBLE_DEVICES (unset: all)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return count
    entries = [entry.strip() for entry in visible.split(",")]
    usable = 0
    for entry in entries:  # CUDA stops at the first invalid entry, e.g. "-1" hides every GPU
        if not entry or entry.startswith("-"):
            break
        usable += 1
    return min(usable, count)


@cache
def detect() -> dict[str, Any]:
    """This machine, found once per process: `cuda` (bool), `gpu_count`, and `packages` (import name → installed).

    Call `detect.cache_clear()` after installing something to look again.
    """
    found = _gpus_from_nvidia_smi()
    gpu_count = _visible(found if found is not None else _gpus_from_proc())
    return {
        "cuda": gpu_count > 0,
        "gpu_count": gpu_count,
        "packages": {name: _installed(name) for name in PACKAGES},
    }


def device_count() -> int:
    """NVIDIA GPUs this process may use (0 on a CPU-only machine)."""
    return detect()["gpu_count"]


def package_availability(package: str) -> Availability:
    """Whether an optional package can be used here and, if not, the locale key saying why.

    A missing GPU comes first: installing the package would not help.
    """
    info = detect()
    if package in NEEDS_CUDA and not info["cuda"]:
        return False, "caps.needs_gpu"
    if not info["packages"].get(package, _installed(package)):
        return False, f"caps.needs_package.{PACKAGES.get(package, package)}"
    return True, None


def _choices(table: dict[str, str | None]) -> dict[str, Availability]:
    return {choice: (True, None) if package is None else package_availability(package)
            for choice, package in table.items()}


def booster_availability() -> dict[str, Availability]:
    """Booster choice → (can run here, locale key of the reason when not)."""
    return _choices(BOOSTER_PACKAGES)


def quantization_availability() -> Availability:
    """Whether 8- and 4-bit quantized loading (bitsandbytes; CPU or GPU) can run here, and why not."""
    return package_availability("bitsandbytes")


def report_to_availability() -> dict[str, Availability]:
    """Experiment tracker (`report_to` value) → (installed, locale key of the reason when not)."""
    return _choices(REPORT_TO_PACKAGES)


def infer_backend_availability() -> dict[str, Availability]:
    """Chat backend (`infer_backend` value) → (can run here, locale key of the reason when not)."""
    return _choices(INFER_BACKEND_PACKAGES)


def summary_key() -> tuple[str, dict[str, Any]]:
    """The locale key and values of a one-line description of this machine's GPUs."""
    count = device_count()
    return ("caps.gpus_found", {"count": count}) if count else ("caps.no_gpu", {})
