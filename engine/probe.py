"""The measured side of the estimate: a few real training steps, and the `python -m engine estimate` command.

`python -m engine estimate CONFIG [--probe]` prints one JSON line: the estimate (`engine.estimate`), and with
`--probe` the peak memory, tokens/s and projected run time of a few real training steps in that process (into a
temporary folder, no checkpoint).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from engine.config import RunConfig, config_from_dict, load_config, parse_overrides
from engine.errors import StudioError
from engine.estimate import GIB, estimate_memory, fits
from engine.preflight import cap_memory, print_outcome
from engine.train import get_stage_runner


def probe_config(config: RunConfig, run_dir: str, steps: int) -> RunConfig:
    """A copy of `config` that trains `steps` steps into `run_dir`: no checkpoint, evaluation, plots or trackers."""
    import copy

    probe = copy.deepcopy(config)
    t, ft = probe.training, probe.finetuning
    t.output_dir, t.max_steps, t.save_strategy, t.logging_steps = run_dir, steps, "no", 1
    t.do_train, t.do_eval, t.do_predict, t.eval_strategy, t.load_best_model_at_end = True, False, False, "no", False
    t.push_to_hub, t.report_to, t.resume_from_checkpoint, t.overwrite_output_dir = False, "none", None, True
    t.early_stopping_patience, ft.early_stopping_steps, ft.plot_loss, ft.use_swanlab = None, None, False, False
    return probe


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _probe_callback(steps_per_epoch: list[int], marks: list[tuple[float, int]], stop: Any) -> Any:
    """A Trainer callback (which also honours SIGTERM) that records the time and tokens seen at each step."""
    import time

    from engine.train.callbacks import AbortCallback

    class ProbeCallback(AbortCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):  # noqa: ANN001, ANN201
            steps_per_epoch.append(len(train_dataloader) if train_dataloader is not None else 0)
            marks.append((time.monotonic(), state.num_input_tokens_seen or 0))

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            marks.append((time.monotonic(), state.num_input_tokens_seen or 0))
            return super().on_step_end(args, state, control, **kwargs)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            stop()

    return ProbeCallback()


def probe_training(config: RunConfig, steps: int = 4) -> dict[str, Any]:
    """Train `steps` real steps of `config` in this process (into a temporary folder, nothing kept) and measure
    peak memory over the size before the model loaded, tokens/s after the first step, and the projected time of
    the whole run (steps per epoch from the real data loader × epochs, or max_steps)."""
    import contextlib
    import tempfile
    import threading

    import datasets  # noqa: F401 - imported before the baseline so that library code does not count as the run's
    import peft  # noqa: F401
    import torch
    import transformers  # noqa: F401

    cuda = torch.cuda.is_available() and not config.training.use_cpu
    peak, done = [_rss()], threading.Event()
    steps_per_epoch: list[int] = []
    marks: list[tuple[float, int]] = []

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss())

    baseline, baseline_max = _rss(), _max_rss()
    sampler = threading.Thread(target=sample, daemon=True)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="estimate-probe-") as run_dir, contextlib.redirect_stdout(sys.stderr):
        probe = probe_config(config, run_dir, steps)
        get_stage_runner(probe)(probe, run_dir=Path(run_dir), resume=None,
                                abort=_probe_callback(steps_per_epoch, marks, done.set))
        done.set()
        sampler.join()
    peak_rss = max(peak[0], _max_rss()) if _max_rss() > baseline_max else peak[0]
    timed = marks[1:] if len(marks) > 2 else marks  # the first step warms caches up: left out when others follow
    seconds = max(timed[-1][0] - timed[0][0], 1e-9) if len(timed) > 1 else 0.0
    per_step = seconds / max(len(timed) - 1, 1)
    t = config.training
    epoch_steps = max((steps_per_epoch[0] if steps_per_epoch else 0) // t.gradient_accumulation_steps, 1)
    total_steps = t.max_steps if t.max_steps > 0 else math.ceil(t.num_train_epochs * epoch_steps)
    result = {"steps": len(marks) - 1, "peak_rss_bytes": peak_rss, "baseline_rss_bytes": baseline,
              "rss_growth_bytes": peak_rss - baseline,
              "tokens_per_second": round((timed[-1][1] - timed[0][1]) / seconds, 2) if seconds else None,
              "seconds_per_step": round(per_step, 4), "total_steps": total_steps,
              "projected_seconds": round(per_step * total_steps, 1)}
    if cuda:
        result["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    return result


# ---------------------------------------------------------------- `python -m engine estimate`


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible here, found without torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def main(config_path: str | None, overrides: list[str], *, probe: bool = False, steps: int = 4, devices: int = 1,
         memory_gb: float | None = None, cpu: bool = False) -> int:
    """Print one JSON line: `{"ok": true, "estimate": {...}, "fits": …, "probe": {...}}` or an error."""
    if not probe:
        cap_memory()  # the estimate reads one small JSON file; a probe measures real training and is not capped

    def work() -> dict[str, Any]:
        if config_path == "-":  # the studio passes its config on stdin
            raw = yaml.safe_load(sys.stdin.read()) or {}
            config = config_from_dict({**raw, **parse_overrides(overrides)}, source="stdin")
        else:
            config = load_config(config_path, overrides) if config_path else config_from_dict({})
        on_gpu = not cpu and not config.training.use_cpu and gpu_visible()
        try:
            estimate = estimate_memory(config, devices=devices, on_gpu=on_gpu)
        except ValueError:
            raise StudioError("estimate_unknown_model", model=config.model.model_name_or_path) from None
        available = memory_gb * GIB if memory_gb else None
        result: dict[str, Any] = {"estimate": estimate.to_json(), "fits": fits(estimate, available)}
        if probe:
            result["probe"] = probe_training(config, steps)
        return result

    return print_outcome(work)
