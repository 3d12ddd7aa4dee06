"""Evaluate & Predict: benchmarks through lm-evaluation-harness (MMLU, C-Eval, CMMLU, our offline studio_bench, any
lm-eval task or group) and generated predictions.

`python -m engine eval CONFIG.yaml [--predict]` runs `engine.eval.run.run_eval`, which writes into the run folder
(`output_dir`, else `save_dir`, else `saves/<model>/<method>/eval_<time>`): config.yaml, status.json,
trainer_log.jsonl (progress, one line per batch), running_log.txt, and
- a benchmark: lm_eval_results_<model>.json (lm-eval's results JSON, per model scored), results.json (the score
  per subject, per category, overall; per model, and their difference) and results.log (the same as a table);
- a prediction: generated_predictions.jsonl (`prompt`, `predict`, `label` per row) and predict_results.json
  (BLEU-4, ROUGE-1/2/L, samples, runtime).

This package is torch-free to import: `check_eval_config` and `list_tasks` serve the pre-launch check.
"""

from __future__ import annotations

from pathlib import Path

from engine.config import RunConfig
from engine.errors import ConfigError, ModelError
from engine.eval.tasks import list_tasks, resolve_tasks
from engine.model.methods import adapter_methods
from engine.validation import validate_config

EVAL_RESULT_FILES = ("results.json", "results.log", "generated_predictions.jsonl", "predict_results.json")
# lm-eval's own results, one file per model scored (engine.eval.report.lm_eval_file).
LM_EVAL_RESULTS_GLOB = "lm_eval_results_*.json"


def wants_predict(config: RunConfig, predict: bool | None = None) -> bool:
    """Whether `eval` predicts (`--predict` or `do_predict: true`) rather than runs a benchmark."""
    return bool(predict) if predict is not None else config.training.do_predict


def check_eval_config(config: RunConfig, predict: bool | None = None) -> RunConfig:
    """Every check of an eval config that needs no model and no rows (or the hub); raises the first problem found."""
    validate_config(config, "eval")
    _check_adapters(config.model.adapter_name_or_path)
    if wants_predict(config, predict):
        _check_predict(config)
    else:
        _check_benchmark(config)
    out = config.training.output_dir or config.evaluation.save_dir
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError("output_dir_is_file", path=out)
    return config


def _check_adapters(names: str | None) -> None:
    """Local adapter folders exist and hold an adapter (hub ids are left to the loader)."""
    from engine.config.validate import looks_like_local_path

    for name in [n.strip() for n in (names or "").split(",") if n.strip()]:
        folder = Path(name).expanduser()
        if folder.is_dir() and not (folder / "adapter_config.json").is_file():
            raise ModelError("adapter_config_missing", path=name)
        if not folder.is_dir() and (folder.exists() or looks_like_local_path(name)):
            raise ModelError("adapter_not_found", path=name)


def _check_predict(config: RunConfig) -> None:
    from engine.data import get_dataset_attrs
    from engine.eval.metrics import require_metric_packages

    data = config.data
    names = data.eval_dataset or data.dataset
    if not names:
        raise ConfigError("predict_no_data")
    get_dataset_attrs(names, data.dataset_dir)  # unknown names fail here, with the known ones listed
    require_metric_packages()


def _check_benchmark(config: RunConfig) -> None:
    ev, model = config.evaluation, config.model
    if not ev.task:
        known = ", ".join(list_tasks(ev.task_dir))
        raise ConfigError("eval_no_task", known=known)
    resolve_tasks(ev.task, ev.task_dir, lang=ev.lang, n_shot=ev.n_shot)
    if ev.compare_with == "base" and not model.adapter_name_or_path:
        raise ConfigError("compare_base_without_adapter")
    if ev.compare_with and ev.compare_with != "base" and not Path(ev.compare_with).expanduser().exists():
        raise ConfigError("compare_adapter_missing", path=ev.compare_with)
    if ev.compare_with and ev.compare_with != "base" and config.finetuning.finetuning_type not in adapter_methods():
        raise ConfigError("compare_adapter_needs_lora", method=config.finetuning.finetuning_type)


__all__ = ["EVAL_RESULT_FILES", "LM_EVAL_RESULTS_GLOB", "check_eval_config", "list_tasks", "wants_predict"]
