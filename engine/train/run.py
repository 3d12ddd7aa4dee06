"""A training job: where the run writes, what it resumes from, and the stage as the body of the job lifecycle."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError, Setting
from engine.jobs import Job, default_run_dir, run_job
from engine.runfolder import clear_results, has_results, is_complete_checkpoint, list_checkpoints
from engine.train import get_stage_runner
from engine.train.trainer_setup import is_main_process

logger = logging.getLogger("engine")


def default_output_dir(config: RunConfig) -> str:
    """saves/<model>/<method>/train_<time>, as the studio names runs."""
    return default_run_dir(config, "train")


def resolve_resume(config: RunConfig, run_dir: Path) -> str | None:
    """The checkpoint folder to resume from (`true` → the latest complete one in the run folder), or None."""
    value = config.training.resume_from_checkpoint
    if value in (None, False, ""):
        return None
    if value is True or str(value).lower() == "true":
        checkpoints = list_checkpoints(run_dir)  # complete ones only: a half-written save is never resumed
        if not checkpoints:
            raise ConfigError("no_checkpoint_to_resume", path=str(run_dir))
        return str(checkpoints[-1])
    folder = Path(str(value))
    if not folder.is_dir():
        raise ConfigError("checkpoint_missing", path=str(value))
    if folder.name.startswith("checkpoint-") and not is_complete_checkpoint(folder):
        raise ConfigError("checkpoint_incomplete", path=str(value))
    return str(value)


def prepare_run_dir(config: RunConfig, main: bool = True) -> tuple[Path, str | None]:
    """Decide where the run writes and refuse to overwrite another run's results unless asked."""
    if not config.training.output_dir:
        config.training.output_dir = default_output_dir(config)
    run_dir = Path(config.training.output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("output_dir_is_file", path=str(run_dir))
    resume = resolve_resume(config, run_dir)
    # Other ranks may see rank 0's fresh files: only the main process judges the folder.
    if main and run_dir.is_dir() and has_results(run_dir) and resume is None:
        if not config.training.overwrite_output_dir:
            raise ConfigError("run_dir_has_results", path=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resume


def run_training(config: RunConfig) -> int:
    """Run one training job into its run folder and leave a final status; returns the process exit code."""
    from engine.train.callbacks import AbortCallback  # transformers: only once a job runs

    main = is_main_process()
    run_dir, resume = prepare_run_dir(config, main)
    overwrite = main and resume is None and config.training.overwrite_output_dir and has_results(run_dir)
    job = Job("train", run_dir, config, stop=AbortCallback(), main=main, clear=clear_results if overwrite else None,
              interrupted="Stopped before a checkpoint could be saved.")
    try:
        return run_job(job, lambda: _train(job, resume))
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """Leave the distributed group before the process exits: a gloo group torn down by interpreter exit while its
    threads still run can abort a rank ("terminate called without an active exception") after it finished."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _train(job: Job, resume: str | None) -> dict[str, Any]:
    """The body: check the checkpoint it resumes from, seed, run the stage; an abort names its checkpoint."""
    from transformers import set_seed

    from engine.train.checkpoints import check_checkpoint_files

    config = job.config
    logger.info("Rank %s of %s: %s training into %s", os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1"),
                config.finetuning.stage, job.run_dir)
    _warn_unused_data_options(config)
    _check_devices(config)
    if resume:
        check_checkpoint_files(Path(resume))  # before any trainer unpickles what it holds
    set_seed(config.training.seed)  # before the model exists: fresh adapter weights depend on it
    get_stage_runner(config)(config, run_dir=job.run_dir, resume=resume, abort=job.stop)
    if not job.stop.requested:
        return {}
    checkpoints = list_checkpoints(job.run_dir)
    return {"checkpoint": str(checkpoints[-1]) if checkpoints else None}


def _check_devices(config: RunConfig) -> None:
    """Settings that need a CUDA GPU stop here, before any model loads, when there is none."""
    import torch

    if config.training.deepspeed and not torch.cuda.is_available():
        raise ConfigError("deepspeed_needs_gpu", key=Setting("deepspeed"), path=config.training.deepspeed)


def _warn_unused_data_options(config: RunConfig) -> None:
    """The tokenization cache and worker options serve pt and sft; other stages say so rather than ignore them."""
    data = config.data
    asked = [name for name, value in (("tokenized_path", data.tokenized_path), ("overwrite_cache", data.overwrite_cache),
                                      ("preprocessing_num_workers", data.preprocessing_num_workers)) if value]
    if asked and config.finetuning.stage not in ("pt", "sft"):
        logger.warning("%s only apply to the pt and sft stages; stage %s tokenizes its data without them.",
                       ", ".join(asked), config.finetuning.stage)
