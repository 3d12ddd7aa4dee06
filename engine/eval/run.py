"""One evaluation or prediction run from start to final status, in a run folder of its own.

The same contract as training: the folder's lock, config.yaml, status.json (running → finished, failed or
aborted), running_log.txt and trainer_log.jsonl. SIGTERM stops between batches and keeps what is done.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.config import RunConfig, save_config
from engine.errors import ConfigError, StudioError
from engine.eval import EVAL_RESULT_FILES, check_eval_config, wants_predict
from engine.runfolder import RunLock, clear_results, has_results, mark_running, write_status

logger = logging.getLogger("engine")


def eval_output_dir(config: RunConfig) -> str:
    """output_dir, else save_dir (LLaMA-Factory's benchmark key), else saves/<model>/<method>/eval_<time>."""
    from engine.paths import saves_dir

    if config.training.output_dir or config.evaluation.save_dir:
        return str(config.training.output_dir or config.evaluation.save_dir)
    model = Path(config.model.model_name_or_path.rstrip("/")).name or "model"
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    return str(saves_dir() / model / config.finetuning.finetuning_type / f"eval_{stamp}")


def prepare_eval_dir(config: RunConfig) -> Path:
    """Create the run folder; a folder holding another run's results is refused unless overwrite_output_dir."""
    run_dir = Path(eval_output_dir(config))
    config.training.output_dir = str(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("output_dir_is_file", path=str(run_dir))
    busy = run_dir.is_dir() and (has_results(run_dir) or any((run_dir / f).exists() for f in EVAL_RESULT_FILES))
    if busy and not config.training.overwrite_output_dir:
        raise ConfigError("eval_dir_has_results", path=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_eval(config: RunConfig, predict: bool | None = None) -> int:
    """Run a benchmark (or, with `predict`/`do_predict`, a prediction) into its run folder; the exit code."""
    from engine.runfolder import attach_running_log  # the same tee as training's, so all logs read alike
    from engine.train.callbacks import AbortCallback

    predict = wants_predict(config, predict)
    check_eval_config(config, predict)
    run_dir = prepare_eval_dir(config)
    lock = RunLock(run_dir)
    lock.acquire()
    if config.training.overwrite_output_dir and (has_results(run_dir) or
                                                 any((run_dir / f).exists() for f in EVAL_RESULT_FILES)):
        clear_results(run_dir)
    restore_output = attach_running_log(run_dir)
    save_config(config, run_dir / "config.yaml")
    mark_running(run_dir)
    write_status(run_dir, "running", task="eval")  # readers tell an evaluation from a training run
    abort = AbortCallback()
    abort.install()
    logger.info("%s into %s", "Predicting" if predict else f"Evaluating on {config.evaluation.task}", run_dir)
    try:
        return _run(config, run_dir, predict, abort, lock)
    finally:
        abort.uninstall()
        restore_output()


def _run(config: RunConfig, run_dir: Path, predict: bool, abort: Any, lock: RunLock) -> int:
    from engine.eval.benchmark import run_benchmark
    from engine.eval.predict import run_predict

    try:
        (run_predict if predict else run_benchmark)(config, run_dir, abort)
        save_config(config, run_dir / "config.yaml")  # with the template the run resolved
    except StudioError as err:
        return _finish(run_dir, "failed", 1, err.message(), lock)
    except KeyboardInterrupt:
        return _finish(run_dir, "aborted", 0, "Stopped at once (a second stop signal).", lock)
    except BaseException as err:  # noqa: BLE001 - every crash must end as a recorded `failed`
        traceback.print_exc()
        return _finish(run_dir, "failed", 1, f"{type(err).__name__}: {err}".splitlines()[0][:500], lock)
    return _finish(run_dir, "aborted" if abort.requested else "finished", 0, None, lock)


def _finish(run_dir: Path, state: str, code: int, error: str | None, lock: RunLock) -> int:
    if error:
        print(f"[{state}] {error}", file=sys.stderr)
    write_status(run_dir, state, exit_code=code, error=error)
    lock.release()
    return code
