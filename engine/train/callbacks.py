"""Trainer callbacks: the live log that the studio reads, and a graceful stop on SIGTERM (a `StopSignal`)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from engine.jobs import StopSignal, progress_line
from engine.runfolder import TrainerLogWriter

# Trainer log keys copied into trainer_log.jsonl under the same name (stage metrics keep theirs).
_SKIP_KEYS = {"loss", "learning_rate", "epoch", "grad_norm", "total_flos", "num_input_tokens_seen",
              "train_tokens_per_second", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


class LogCallback(TrainerCallback):
    """Appends one LLaMA-Factory-compatible JSON line to trainer_log.jsonl per logging step (main process only)."""

    def __init__(self, run_dir: Path) -> None:
        self.writer = TrainerLogWriter(run_dir)
        self.start_time = time.monotonic()
        self.start_step = 0
        self.start_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 - the Trainer's signature
        self.start_time = time.monotonic()
        self.start_step = state.global_step
        self.start_tokens = state.num_input_tokens_seen or 0
        if state.is_world_process_zero and state.global_step:
            self.writer.truncate_after(state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN201
        if not state.is_world_process_zero or not logs or "train_loss" in logs:
            return  # the end-of-training summary goes to all_results.json instead
        elapsed = time.monotonic() - self.start_time
        record = progress_line(state.global_step, state.max_steps or 0, elapsed, first=self.start_step)
        if "loss" in logs:
            record["loss"] = _clean(logs["loss"])
            record["lr"] = _clean(logs.get("learning_rate"))
        record["epoch"] = _clean(logs.get("epoch", state.epoch))
        if logs.get("grad_norm") is not None:
            record["grad_norm"] = _clean(logs["grad_norm"])
        tokens = state.num_input_tokens_seen or 0
        if tokens:
            record["total_tokens"] = tokens
            if elapsed > 0:
                record["throughput"] = round((tokens - self.start_tokens) / elapsed, 2)
        for key, value in logs.items():
            if key not in _SKIP_KEYS and key not in record:
                record[key] = _clean(value)
        self.writer.write(record)


class AbortCallback(StopSignal, TrainerCallback):
    """Turns SIGTERM into 'save a checkpoint at the next step and stop', so an abort loses nothing."""

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self._any_rank_requested():
            self.requested = True
            control.should_save = True
            control.should_training_stop = True
        return control

    def _any_rank_requested(self) -> bool:
        """All ranks must stop at the same step, or the others hang in the next all-reduce."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.requested
        import torch

        flag = torch.tensor([1.0 if self.requested else 0.0])
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())
