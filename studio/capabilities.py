"""What this machine can run: NVIDIA GPUs and the optional packages, found without importing torch or the packages.

The studio greys out, or explains, the choices that would fail: FlashAttention on a machine without a GPU, 4-bit
quantization without bitsandbytes, a tracker that is not installed. Reasons are locale keys (`caps.…`) that read
well on their own, so a label can append `t(reason, lang)` as it is.
"""

from __future__ import annotations

import math
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
    "apollo_torch": "apollo",
    "adam_mini": "adam-mini",
    "tensorboard": "trackers",
    "wandb": "trackers",
    "mlflow": "trackers",
    "swanlab": "trackers",
    "trackio": "trackers",
}
# These run only on an NVIDIA GPU: installed without one, they are still unusable.
NEEDS_CUDA = frozenset({"flash_attn", "unsloth", "liger_kernel", "vllm"})
# Where the NVIDIA driver lists one folder per GPU, for machines without nvidia-smi on PATH.
PROC_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
PROC_MEMINFO = Path("/proc/meminfo")
GIB = 1024**3

Availability = tuple[bool, str | None]

# Choice → the package it needs (None: always available).
BOOSTER_PACKAGES: dict[str, str | None] = {
    "auto": None, "sdpa": None, "flashattn2": "flash_attn", "unsloth": "unsloth", "liger_kernel": "liger_kernel",
}
REPORT_TO_PACKAGES: dict[str, str | None] = {
    "none": None, "all": None,
    "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "swanlab": "swanlab", "trackio": "trackio",
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


def _gpu_memory_from_nvidia_smi() -> list[float]:
    """Each GPU's memory in GiB as nvidia-smi reports it; empty without nvidia-smi or a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    sizes = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        try:
            sizes.append(float(line.strip()) / 1024)  # MiB
        except ValueError:
            continue
    return sizes


def _gpus_named_by_nvidia_smi() -> list[tuple[str, float | None]]:
    """(name, GiB) of each GPU nvidia-smi lists, in index order; empty without nvidia-smi or a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus: list[tuple[str, float | None]] = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        name, _, memory = line.rpartition(",")
        try:
            gpus.append((name.strip(), float(memory.strip()) / 1024))  # MiB
        except ValueError:
            gpus.append((line.strip(), None))
    return gpus


def gpu_list() -> list[dict[str, Any]]:
    """The GPUs training may use: `index` (as CUDA_VISIBLE_DEVICES takes it), `name` and `memory_gb` (None when
    nvidia-smi cannot tell, e.g. a machine that shows its GPUs only under /proc)."""
    named = _gpus_named_by_nvidia_smi()
    gpus = []
    for index in range(device_count()):
        name, memory = named[index] if index < len(named) else (None, None)
        gpus.append({"index": str(index), "name": name, "memory_gb": round(memory) if memory else None})
    return gpus


def gpu_label(gpu: dict[str, Any]) -> str:
    """"GPU 0 · NVIDIA H100 · 80 GB", leaving out what is not known."""
    parts = [f"GPU {gpu['index']}", gpu.get("name"), f"{gpu['memory_gb']} GB" if gpu.get("memory_gb") else None]
    return " · ".join(part for part in parts if part)


def _ram_from_proc() -> float:
    """This machine's memory in GiB from /proc/meminfo (0 when it cannot be read, e.g. not on Linux)."""
    try:
        for line in PROC_MEMINFO.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024 / GIB  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


@cache
def training_memory() -> tuple[float, bool]:
    """(GiB that training can use here, whether that is GPU memory): the visible GPUs' memory together (ZeRO can
    spread a model over them), else the computer's memory. Found once per process, without torch."""
    gpus = _gpu_memory_from_nvidia_smi()[:device_count()]
    if gpus:
        return sum(gpus), True
    return _ram_from_proc(), False


def memory_needed_gb(params_billion: float, on_gpu: bool) -> int:
    """Rough GiB that LoRA training of a model takes: its weights in 16-bit on a GPU (32-bit on the processor),
    a fifth more for activations and adapter optimiser state, and 1 GiB of runtime. LLaMA-Factory's table puts a
    7B LoRA run at 16 GB; this gives 17."""
    bytes_per_param = 2 if on_gpu else 4
    return math.ceil(params_billion * 1e9 * bytes_per_param * 1.2 / GIB + 1)


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "huggingface" / "hub"


def _modelscope_cache() -> Path:
    if os.environ.get("MODELSCOPE_CACHE"):
        return Path(os.environ["MODELSCOPE_CACHE"]).expanduser()
    return Path.home() / ".cache" / "modelscope" / "hub"


def _has_files(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def dataset_downloaded(repo_id: str, hub: str = "huggingface") -> bool:
    """Whether a hub dataset is already in this computer's download cache (looked up in folders, never online)."""
    org, _, name = repo_id.partition("/")
    if hub == "modelscope":
        return _has_files(_modelscope_cache() / "datasets" / org / name)
    return _has_files(_hf_cache() / f"datasets--{org}--{name}" / "snapshots")


def model_downloaded(repo_id: str, hub: str = "huggingface") -> bool:
    """Whether a hub model is already in this computer's download cache (looked up in folders, never online)."""
    org, _, name = repo_id.partition("/")
    if hub == "modelscope":
        root = _modelscope_cache()
        # ModelScope has stored models under hub/models/<org>/<name> and, in older versions, hub/<org>/<name>
        return any(_has_files(folder) for folder in (root / "models" / org / name, root / org / name,
                                                      root / "models" / org / name.replace(".", "___")))
    return _has_files(_hf_cache() / f"models--{org}--{name}" / "snapshots")
