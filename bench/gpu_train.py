"""GPU training throughput: LoRA SFT of a randomly initialised 0.5 B model with each speed-up ("booster") on and off.

What it measures: the engine's own SFT stage (the code `python -m engine train` runs) on a model with
Qwen2.5-0.5B's architecture (hidden 896, 24 layers, 14 heads, 2 key/value heads, intermediate 4864, vocabulary
151,936, tied embeddings), randomly initialised in bf16 from the config values below (nothing is downloaded), with
the demo tokenizer, bf16, cutoff 2048, packing (examples never attend to each other), LoRA rank 16 on every linear
layer, no activation checkpointing, batch 4, on the demo datasets. For each variant, in a fresh subprocess: real
tokens/s over the steps after the warm-up, MFU and peak GPU memory (`torch.cuda.max_memory_allocated` during
training).

Variants: `sdpa` (the baseline: PyTorch's scaled-dot-product attention, no extra kernels), `fa2` (FlashAttention-2,
`flash_attn: fa2`), `liger` (`enable_liger_kernel`), `unsloth` (`use_unsloth`, its checkpointing off like the
others') and `fa2+liger`. A variant whose package is missing is skipped with the reason.

MFU = 6 · N · tokens/s / peak bf16 FLOP/s, with N the model's parameters (the usual convention; LoRA skips the
weight gradients of the frozen base, so the work actually done is closer to 4 · N per token). Peak FLOP/s comes
from a small table of dense bf16 numbers by GPU name, or `--peak-tflops`.

Baseline: the `sdpa` variant's tokens/s. Target: every booster that runs is at least as fast as the baseline
(ratio ≥ 1.0) without using more GPU memory: a booster must never slow training down.

Without a CUDA GPU it prints why it skipped, writes a JSON result saying so, and exits 0.

    .venv/bin/python bench/gpu_train.py [--quick] [--steps N] [--peak-tflops T] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO_ROOT, gpu_names, parser, print_table, python_executable, write_result

NAME = "gpu_train"
# Qwen2.5-0.5B's architecture (its config.json values), so no download is needed.
QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}, "attention_dropout": 0.0,
    "initializer_range": 0.02, "use_sliding_window": False,
}
DATASETS = "alpaca_en_demo,alpaca_zh_demo,glaive_toolcall_en_demo,multiturn_en_demo"
CUTOFF_LEN = 2048
BATCH_SIZE = 4
STEPS = 30
WARMUP = 5  # steps left out of tokens/s: CUDA context, kernel autotuning, Triton compilation
# Engine settings per variant (on top of the common ones) and the package each needs.
VARIANTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "sdpa": ({"flash_attn": "sdpa"}, ()),
    "fa2": ({"flash_attn": "fa2"}, ("flash_attn",)),
    "liger": ({"flash_attn": "sdpa", "enable_liger_kernel": True}, ("liger_kernel",)),
    "unsloth": ({"use_unsloth": True, "disable_gradient_checkpointing": True}, ("unsloth",)),
    "fa2+liger": ({"flash_attn": "fa2", "enable_liger_kernel": True}, ("flash_attn", "liger_kernel")),
}
# Dense bf16 tensor-core peak FLOP/s (no sparsity), matched by substring of the GPU name, most specific first.
PEAK_BF16_TFLOPS = [
    ("GB200", 2500.0), ("B200", 2250.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0),
    ("H100", 989.0), ("H800", 989.0), ("GH200", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0),
    ("L40", 181.0), ("A6000", 155.0), ("A10G", 125.0), ("A10", 125.0), ("L4", 121.0), ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]


def peak_tflops(gpu: str, override: float | None) -> float | None:
    """The GPU's dense bf16 peak in TFLOP/s: the override, else the table entry its name contains, else None."""
    if override:
        return override
    return next((tflops for name, tflops in PEAK_BF16_TFLOPS if name.lower() in gpu.lower()), None)


def missing_packages(variant: str) -> list[str]:
    """The packages a variant needs that cannot be imported here."""
    import importlib.util

    return [name for name in VARIANTS[variant][1] if importlib.util.find_spec(name) is None]


# ---------------------------------------------------------------- inside a worker


def build_model(folder: Path) -> int:
    """Save a randomly initialised bf16 model with Qwen2.5-0.5B's architecture and the demo tokenizer; its size."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.model.demo import build_demo_model

    demo = build_demo_model(folder.parent / "demo-tokenizer")
    config = AutoConfig.for_model(**{k: v for k, v in QWEN25_05B.items() if k != "architectures"})
    config.architectures = QWEN25_05B["architectures"]
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(folder)
    for item in demo.iterdir():  # tokenizer, chat template and the studio's model notes
        if item.is_file() and not item.name.startswith(("model", "config", "generation_config", "build_info")):
            shutil.copy2(item, folder / item.name)
    return sum(p.numel() for p in model.parameters())


def run_engine(model_dir: str, variant: str, steps: int, out_dir: str) -> dict[str, Any]:
    """Train with the engine's SFT stage and the meter among its callbacks; tokens/s after the warm-up."""
    import torch
    from train_throughput import make_meter
    from transformers import AutoTokenizer, set_seed

    from engine.config import config_from_dict
    from engine.train import get_stage_runner
    from engine.validation import validate_config

    settings, _ = VARIANTS[variant]
    config = validate_config(config_from_dict({
        "model_name_or_path": model_dir, "template": "chatml", "stage": "sft", "finetuning_type": "lora",
        "lora_rank": 16, "lora_target": "all", "dataset": DATASETS, "cutoff_len": CUTOFF_LEN, "packing": True,
        "per_device_train_batch_size": BATCH_SIZE, "max_steps": steps, "learning_rate": 1e-4, "bf16": True,
        "gradient_checkpointing": False, "logging_steps": 1, "save_strategy": "no", "plot_loss": False, "seed": 42,
        "output_dir": out_dir, **settings}))
    meter = make_meter(AutoTokenizer.from_pretrained(model_dir).pad_token_id, cuda=True)
    set_seed(42)
    get_stage_runner(config)(config, run_dir=Path(out_dir), resume=None, abort=meter)
    result = meter.result()
    skip = min(WARMUP, max(len(result["step_seconds"]) - 1, 0))
    seconds, tokens = sum(result["step_seconds"][skip:]), sum(result["step_tokens"][skip:])
    result.update(steady_tokens_per_s=tokens / seconds if seconds else None, warmup_steps=skip,
                  peak_memory_gib=torch.cuda.max_memory_allocated() / 1024 ** 3)
    return result


def worker(variant: str, model_dir: str, steps: int, result_file: Path) -> None:
    """One variant in this (fresh) process; writes its numbers to `result_file`."""
    import torch

    torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as out_dir:
        result = run_engine(model_dir, variant, steps, out_dir)
    result_file.write_text(json.dumps(result), encoding="utf-8")


# ---------------------------------------------------------------- orchestration


def worker_env(scratch: Path) -> dict[str, str]:
    """Offline, the repository and this folder importable, run folders and caches in `scratch`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", STUDIO_HOME=str(scratch / "home"),
               STUDIO_TOKENIZED_CACHE=str(scratch / "tokenized-cache"))
    paths = [str(REPO_ROOT), str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


def run_worker(args: list[str], scratch: Path) -> subprocess.CompletedProcess:
    """This script again with `args`, in a fresh process."""
    return subprocess.run([python_executable(), str(Path(__file__).resolve()), *args], cwd=REPO_ROOT,
                          env=worker_env(scratch), capture_output=True, text=True)


def run_variant(variant: str, model_dir: Path, steps: int, scratch: Path) -> dict[str, Any]:
    """A variant's numbers, or why it was skipped or failed."""
    missing = missing_packages(variant)
    if missing:
        return {"skipped": f"needs {', '.join(missing)}, which is not installed"}
    result_file = scratch / f"{variant.replace('+', '-')}.json"
    proc = run_worker(["--worker", variant, "--model-dir", str(model_dir), "--steps", str(steps),
                       "--result-file", str(result_file)], scratch)
    if proc.returncode != 0 or not result_file.exists():
        return {"failed": f"exit {proc.returncode}", "output_tail": (proc.stdout + proc.stderr)[-3000:]}
    return json.loads(result_file.read_text(encoding="utf-8"))


def skip(reason: str, results_dir: Path) -> int:
    """Say why nothing ran, record it, and succeed (a machine without a GPU is not an error)."""
    print(f"skipped: {reason}", flush=True)
    write_result(NAME, {"skipped": True, "reason": reason}, results_dir)
    return 0


def cuda_reason() -> str | None:
    """Why this machine cannot run the benchmark, or None when it can."""
    if not gpu_names():
        return "no NVIDIA GPU found (nvidia-smi lists none); this benchmark needs CUDA"
    probe = subprocess.run([python_executable(), "-c", "import torch; print(torch.cuda.is_available())"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        return "torch cannot use the GPU here (torch.cuda.is_available() is False: a CPU-only torch build?)"
    return None


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help=f"optimiser steps per variant (default {STEPS}; "
                                                            f"quick: {WARMUP + 3})")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, for MFU")
    ap.add_argument("--worker", choices=list(VARIANTS), help="internal: run one variant in this process")
    ap.add_argument("--model-dir", help="internal: the model folder a worker trains")
    ap.add_argument("--result-file", type=Path, help="internal: where a worker writes its numbers")
    args = ap.parse_args()
    steps = args.steps or (WARMUP + 3 if args.quick else STEPS)
    if args.worker:
        sys.path.insert(0, str(REPO_ROOT))
        worker(args.worker, args.model_dir, steps, args.result_file)
        return 0
    reason = cuda_reason()
    if reason:
        return skip(reason, args.results_dir)
    gpu = gpu_names()[0]
    peak = peak_tflops(gpu, args.peak_tflops)
    with tempfile.TemporaryDirectory(prefix="bench-gpu-train-") as tmp:
        scratch, model_dir = Path(tmp), Path(tmp) / "qwen2.5-0.5b-random"
        build = subprocess.run([python_executable(), "-c", "import sys; from gpu_train import build_model; "
                                "from pathlib import Path; print(build_model(Path(sys.argv[1])))", str(model_dir)],
                               cwd=REPO_ROOT, env=worker_env(scratch), capture_output=True, text=True)
        if build.returncode != 0:
            raise RuntimeError(f"building the 0.5B model failed:\n{(build.stdout + build.stderr)[-3000:]}")
        parameters = int(build.stdout.split()[-1])
        results = {variant: run_variant(variant, model_dir, steps, scratch) for variant in VARIANTS}
    return report(results, parameters, peak, gpu, steps, args)


def report(results: dict[str, dict[str, Any]], parameters: int, peak: float | None, gpu: str, steps: int,
           args: Any) -> int:
    """Print the table and write the JSON result (ratios against sdpa, MFU, memory, the target verdict)."""
    base = results["sdpa"].get("steady_tokens_per_s")
    rows, verdicts = [], {}
    for variant, r in results.items():
        rate = r.get("steady_tokens_per_s")
        if rate is None:
            rows.append([variant, "-", "-", "-", "-", r.get("skipped") or r.get("failed", "?")])
            continue
        r["mfu"] = 6 * parameters * rate / (peak * 1e12) if peak else None
        r["ratio_vs_sdpa"] = rate / base if base else None
        if variant != "sdpa" and base:
            verdicts[variant] = (r["ratio_vs_sdpa"] >= 1.0
                                 and r["peak_memory_gib"] <= results["sdpa"]["peak_memory_gib"] * 1.02)
        rows.append([variant, rate, r["ratio_vs_sdpa"] or "-", r["mfu"] if r["mfu"] is not None else "-",
                     r["peak_memory_gib"], "ok"])
        for key in ("losses", "step_seconds", "step_tokens"):
            r.pop(key, None)
    print_table(f"LoRA SFT, Qwen2.5-0.5B architecture (random init, {parameters / 1e6:.0f} M parameters), bf16, "
                f"cutoff {CUTOFF_LEN}, packing, batch {BATCH_SIZE}, {steps} steps on {gpu}",
                ["variant", "tokens/s", "× sdpa", "MFU", "peak GiB", "status"], rows)
    met = bool(verdicts) and all(verdicts.values())
    print(f"target (every booster ≥ sdpa tokens/s, memory ≤ sdpa's): {'met' if met else 'NOT met'} {verdicts}")
    write_result(NAME, {
        "quick": args.quick, "gpu": gpu, "peak_bf16_tflops": peak, "parameters": parameters,
        "settings": {"cutoff_len": CUTOFF_LEN, "batch_size": BATCH_SIZE, "steps": steps, "warmup_steps": WARMUP,
                     "datasets": DATASETS, "lora_rank": 16, "packing": True, "bf16": True},
        "baseline": "sdpa (no extra kernels)", "target": "every booster >= 1.0x sdpa tokens/s at <= sdpa memory",
        "results": results, "verdicts": verdicts, "target_met": met}, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
