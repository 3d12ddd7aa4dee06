"""LLaMA-Factory keys for features this studio does not build: accepted at their default, refused otherwise.

Each entry names the feature and the nearest thing that does work, so a config brought from LLaMA-Factory fails
with a message saying what to change, never with "Unknown setting". `off` is LLaMA-Factory's default: the value
that asks for nothing, accepted and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Declined:
    """A feature not built here: `feature` and `instead` are locale phrases (`phrase.<name>`)."""

    feature: str
    instead: str
    off: Any


def _group(feature: str, instead: str, defaults: dict[str, Any]) -> dict[str, Declined]:
    return {key: Declined(feature, instead, off) for key, off in defaults.items()}


DECLINED: dict[str, Declined] = {
    **_group("feature_multimodal", "instead_multimodal", {
        # Gemma 3's pan-and-scan, InternVL's tiling and Qwen-Omni's video soundtrack (the plugins built so far
        # have none of them).
        "image_do_pan_and_scan": False, "crop_to_patches": False, "use_audio_in_video": False,
    }),
    # Ray Train sets up its workers' process group itself: there is no rendezvous address to choose.
    **_group("feature_ray_master", "instead_ray_master", {"master_addr": None, "master_port": None}),
    **_group("feature_fp8", "instead_fp8", {
        "fp8": False, "fp8_backend": "auto", "fp8_enable_fsdp_float8_all_gather": False,
    }),
    **_group("feature_ktransformers", "instead_ktransformers", {
        "use_kt": False, "kt_weight_path": None, "kt_expert_checkpoint_path": None, "kt_use_lora_experts": None,
        "kt_lora_expert_num": None, "kt_lora_expert_intermediate_size": None,
    }),
    **_group("feature_sglang", "instead_sglang", {
        "sglang_maxlen": 4096, "sglang_mem_fraction": 0.7, "sglang_tp_size": -1, "sglang_config": None,
        "sglang_lora_backend": "triton",
    }),
    **_group("feature_megatron", "instead_megatron", {"use_mca": False}),
    **_group("feature_hyper_parallel", "instead_megatron", {"use_hyper_parallel": False, "hyper_parallel_args": None}),
    **_group("feature_v1_kernels", "instead_v1_kernels", {"use_v1_kernels": False}),
    **_group("feature_profiler", "instead_profiler", {
        "enable_torch_profiler": False, "profiler_output_dir": None, "profiler_wait_steps": 1,
        "profiler_warmup_steps": 1, "profiler_active_steps": 1, "profiler_repeat": 1, "profiler_record_shapes": True,
        "profiler_profile_memory": True, "profiler_with_stack": True, "profile_modules": None,
    }),
    **_group("feature_mod", "instead_mod", {"mixture_of_depths": None}),
    # transformers' Seq2SeqTrainer only: our predictions take their settings from the generation keys.
    **_group("feature_sortish_sampler", "instead_sortish_sampler", {"sortish_sampler": False}),
    **_group("feature_seq2seq_generation", "instead_seq2seq_generation", {
        "generation_max_length": None, "generation_num_beams": None, "generation_config": None,
    }),
}


def is_off(key: str, value: Any) -> bool:
    """Whether `value` asks for nothing (LLaMA-Factory's default, or empty)."""
    off = DECLINED[key].off
    if value is None or value == off:
        return True
    empty = str(value).strip().lower() in {"", "none", "null", "false", "no", "off", "0"}
    if isinstance(off, bool):
        return empty != off  # `false` (or empty) is off exactly when the default is false
    if off is None:
        return empty
    try:
        return float(value) == float(off)
    except (TypeError, ValueError):
        return str(value) == str(off)
