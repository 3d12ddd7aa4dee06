"""One training run from start to final status: the run folder, the lock, the stage, and what happens on failure."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.config import RunConfig, save_config
from engine.errors import ConfigError, StudioError
from engine.runfolder import (
    RunLock,
    attach_running_log,
    clear_results,
    has_results,
    list_checkpoints,
    mark_running,
    write_status,
)

logger = logging.getLogger("engine")


def default_output_dir(config: RunConfig) -> str:
    """saves/<model>/<method>/train_<time>, as the studio names runs."""
    from engine.paths import saves_dir

    model = Path(config.model.model_name_or_path.rstrip("/")).name or "model"
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return str(saves_dir() / model / config.finetuning.finetuning_type / f"train_{stamp}")


def resolve_resume(config: RunConfig, run_dir: Path) -> str | None:
    """The checkpoint folder to resume from (`true` → the latest in the run folder), or None."""
    value = config.training.resume_from_checkpoint
    if value in (None, False, ""):
        return None
    if value is True or str(value).lower() == "true":
        checkpoints = list_checkpoints(run_dir)
        if not checkpoints:
            raise ConfigError("no_checkpoint_to_resume", path=str(run_dir))
        return str(checkpoints[-1])
    if not Path(str(value)).is_dir():
        raise ConfigError("checkpoint_missing", path=str(value))
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
    from engine.train.callbacks import AbortCallback
    from engine.train.trainer_setup import is_main_process

    main = is_main_process()
    run_dir, resume = prepare_run_dir(config, main)
    lock = RunLock(run_dir)
    restore_output = lambda: None  # noqa: E731
    if main:
        lock.acquire()
        if has_results(run_dir) and resume is None and config.training.overwrite_output_dir:
            clear_results(run_dir)
        restore_output = attach_running_log(run_dir)
        save_config(config, run_dir / "config.yaml")
        mark_running(run_dir)
    abort = AbortCallback()
    abort.install()
    logger.info("Rank %s of %s: %s training into %s", os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1"),
                config.finetuning.stage, run_dir)
    _warn_unused_data_options(config)
    try:
        return _run_stage(config, run_dir, resume, abort, main, lock)
    finally:
        abort.uninstall()
        restore_output()


def _warn_unused_data_options(config: RunConfig) -> None:
    """The tokenization cache and worker options serve pt and sft; other stages say so rather than ignore them."""
    data = config.data
    asked = [name for name, value in (("tokenized_path", data.tokenized_path), ("overwrite_cache", data.overwrite_cache),
                                      ("preprocessing_num_workers", data.preprocessing_num_workers)) if value]
    if asked and config.finetuning.stage not in ("pt", "sft"):
        logger.warning("%s only apply to the pt and sft stages; stage %s tokenizes its data without them.",
                       ", ".join(asked), config.finetuning.stage)


def _run_stage(config: RunConfig, run_dir: Path, resume: str | None, abort: Any, main: bool, lock: RunLock) -> int:
    from engine.train import get_stage_runner

    try:
        from transformers import set_seed

        set_seed(config.training.seed)  # before the model exists: fresh adapter weights depend on it
        get_stage_runner(config)(config, run_dir=run_dir, resume=resume, abort=abort)
    except StudioError as err:
        return _finish(run_dir, main, "failed", 1, err.message(), lock)
    except KeyboardInterrupt:
        return _finish(run_dir, main, "aborted", 0, "Stopped before a checkpoint could be saved.", lock)
    except BaseException as err:  # noqa: BLE001 - every crash must end as a recorded `failed`
        traceback.print_exc()
        summary = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        return _finish(run_dir, main, "failed", 1, summary, lock)
    if abort.requested:
        checkpoints = list_checkpoints(run_dir)
        where = str(checkpoints[-1]) if checkpoints else None
        return _finish(run_dir, main, "aborted", 0, None, lock, checkpoint=where)
    return _finish(run_dir, main, "finished", 0, None, lock)


def _finish(run_dir: Path, main: bool, state: str, code: int, error: str | None, lock: RunLock,
            **extra: Any) -> int:
    if main:
        if error:
            print(f"[{state}] {error}", file=sys.stderr)
        write_status(run_dir, state, exit_code=code, error=error, **extra)
        lock.release()
    return code
