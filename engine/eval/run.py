"""An evaluation or prediction job: its run folder and the benchmark or prediction as the body of the job lifecycle.

The same contract as training (`engine.jobs`): the folder's lock, config.yaml, status.json with `task: eval`
(running → finished, failed or aborted), running_log.txt and trainer_log.jsonl. SIGTERM stops between batches and
keeps what is done.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.config import RunConfig, save_config
from engine.errors import ConfigError
from engine.eval import EVAL_RESULT_FILES, LM_EVAL_RESULTS_GLOB, benchmark, check_eval_config, wants_predict
from engine.eval import predict as prediction
from engine.jobs import Job, StopSignal, default_run_dir, run_job
from engine.runfolder import CONFIG_FILE, clear_results, has_results

logger = logging.getLogger("engine")


def eval_output_dir(config: RunConfig) -> str:
    """output_dir, else save_dir (LLaMA-Factory's benchmark key), else saves/<model>/<method>/eval_<time>."""
    if config.training.output_dir or config.evaluation.save_dir:
        return str(config.training.output_dir or config.evaluation.save_dir)
    return default_run_dir(config, "eval")


def _holds_results(run_dir: Path) -> bool:
    return run_dir.is_dir() and (has_results(run_dir) or any((run_dir / f).exists() for f in EVAL_RESULT_FILES)
                                 or any(run_dir.glob(LM_EVAL_RESULTS_GLOB)))


def prepare_eval_dir(config: RunConfig) -> Path:
    """Create the run folder; a folder holding another run's results is refused unless overwrite_output_dir."""
    run_dir = Path(eval_output_dir(config))
    config.training.output_dir = str(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("output_dir_is_file", path=str(run_dir))
    if _holds_results(run_dir) and not config.training.overwrite_output_dir:
        raise ConfigError("eval_dir_has_results", path=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_eval(config: RunConfig, predict: bool | None = None) -> int:
    """Run a benchmark (or, with `predict`/`do_predict`, a prediction) into its run folder; the exit code."""
    predicting = wants_predict(config, predict)
    check_eval_config(config, predicting)
    run_dir = prepare_eval_dir(config)
    overwrite = config.training.overwrite_output_dir and _holds_results(run_dir)
    job = Job("eval", run_dir, config, stop=StopSignal(), clear=clear_results if overwrite else None,
              interrupted="Stopped at once (a second stop signal).")

    def body() -> None:
        logger.info("%s into %s", "Predicting" if predicting else f"Evaluating on {config.evaluation.task}", run_dir)
        if predicting:
            prediction.run_predict(config, run_dir, job.stop)
        else:
            benchmark.run_benchmark(config, run_dir, job.stop)
        save_config(config, run_dir / CONFIG_FILE)  # with the template the run resolved

    return run_job(job, body)
