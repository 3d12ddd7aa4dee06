"""Trainer callbacks: the live log that the studio reads, a graceful stop on SIGTERM (a `StopSignal`), early
stopping, and the SwanLab and Trackio trackers set up from our keys."""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.jobs import StopSignal, progress_line
from engine.runfolder import TrainerLogWriter

logger = logging.getLogger(__name__)

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
        if "rewards/accuracies" in logs:  # LLaMA-Factory's name for it, which its board and scripts read
            record["accuracy"] = _clean(logs["rewards/accuracies"])
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


class EarlyStopping(TrainerCallback, ExportableState):
    """Stops training once the evaluation metric has not improved for `patience` evaluations in a row
    (`early_stopping_steps` or `early_stopping_patience`).

    It keeps the best value itself, so unlike transformers' EarlyStoppingCallback it needs neither
    `load_best_model_at_end` nor `metric_for_best_model` (default: the eval loss, lower is better).
    """

    def __init__(self, patience: int, metric: str | None = None, greater_is_better: bool | None = None) -> None:
        self.patience = patience
        self.metric = metric or "loss"
        self.greater_is_better = (not self.metric.endswith("loss")) if greater_is_better is None else greater_is_better
        self.best: float | None = None
        self.evaluations_without_improvement = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201
        key = self.metric if self.metric.startswith("eval_") else f"eval_{self.metric}"
        value = (metrics or {}).get(key)
        if value is None:
            logger.warning("Early stopping watches %s, which this evaluation did not report.", key)
            return
        improved = self.best is None or (value > self.best if self.greater_is_better else value < self.best)
        if improved:
            self.best, self.evaluations_without_improvement = float(value), 0
        else:
            self.evaluations_without_improvement += 1
        if self.evaluations_without_improvement >= self.patience:
            logger.info("Early stopping: %s has not improved on %g for %d evaluations.", key, self.best,
                        self.patience)
            control.should_training_stop = True

    def state(self) -> dict[str, Any]:
        return {"args": {"patience": self.patience, "metric": self.metric, "greater_is_better": self.greater_is_better},
                "attributes": {"best": self.best,
                               "evaluations_without_improvement": self.evaluations_without_improvement}}


SWANLAB_MODES = {"cloud": "online", "local": "local"}


def swanlab_callback(config: RunConfig, run_dir: Path) -> Any:
    """SwanLab's own Trainer callback, set up from the swanlab_* keys (as LLaMA-Factory does).

    Local mode keeps the logs under the run folder (`swanlab_logdir` moves them) and needs no network; without
    SwanLab's dashboard package it writes them for a later `swanlab sync` (its offline mode). The API key reaches
    SwanLab through its environment variable, so it is never printed or written with the config.
    """
    if importlib.util.find_spec("swanlab") is None:
        raise ConfigError("swanlab_missing")
    import swanlab
    from swanlab.integration.transformers import SwanLabCallback

    ft = config.finetuning
    if ft.swanlab_api_key:
        os.environ["SWANLAB_API_KEY"] = ft.swanlab_api_key
    if ft.swanlab_lark_webhook_url:
        from swanlab.plugin.notification import LarkCallback

        swanlab.register_callbacks([LarkCallback(webhook_url=ft.swanlab_lark_webhook_url,
                                                 secret=ft.swanlab_lark_secret)])
    mode = SWANLAB_MODES[ft.swanlab_mode]
    if mode == "local" and importlib.util.find_spec("swanboard") is None:
        mode = "offline"

    class StudioSwanLabCallback(SwanLabCallback):
        """Start failures become a message saying what to set; the run is closed at the end of training."""

        def setup(self, args: Any, state: Any, model: Any = None) -> None:
            try:
                super().setup(args, state, model)
            except Exception as err:  # SwanLab raises its own kinds (login, network, no terminal to ask on)
                raise ConfigError("swanlab_start_failed", mode=ft.swanlab_mode, cause=str(err)) from err

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            super().on_train_end(args, state, control, **kwargs)
            if state.is_world_process_zero and self._get_active_run() is not None:
                swanlab.finish()

    return StudioSwanLabCallback(project=ft.swanlab_project, workspace=ft.swanlab_workspace,
                                 experiment_name=ft.swanlab_run_name or config.training.run_name or Path(run_dir).name,
                                 mode=mode, log_dir=ft.swanlab_logdir or str(Path(run_dir) / "swanlog"))


def place_trackio_logs(run_dir: Path) -> None:
    """Trackio's database goes under the run folder (`trackio/`) unless TRACKIO_DIR is set.

    Trackio reads TRACKIO_DIR once, when first imported, so it is imported here with the variable set; a process
    that imported it before keeps the folder it chose then.
    """
    if "TRACKIO_DIR" in os.environ or "trackio" in sys.modules or importlib.util.find_spec("trackio") is None:
        return
    folder = Path(run_dir) / "trackio"
    os.environ["TRACKIO_DIR"] = str(folder)
    try:
        import trackio  # noqa: F401
    finally:
        del os.environ["TRACKIO_DIR"]
    logger.info("Trackio logs in %s: view them with TRACKIO_DIR=%s trackio show", folder, folder)
