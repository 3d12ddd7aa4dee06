"""Score a model (and, with `compare_with`, a second one) on benchmarks through lm-evaluation-harness.

Tasks are resolved and loaded first (no model yet: a wrong name or a missing network fails at once); then each
model is built by our loader (adapters, quantization, device placement as everywhere else), handed to lm-eval's
HFLM, scored, and freed before the next. Each model's lm-eval results JSON is written as soon as it is done.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.eval.harness import Stopped, load_tasks, score, wrap_model, write_lm_eval_json
from engine.eval.progress import ProgressLog
from engine.eval.report import lm_eval_file, write_results
from engine.eval.tasks import resolve_tasks

logger = logging.getLogger(__name__)


def compared_models(config: RunConfig) -> list[tuple[str, Any]]:
    """(label, ModelArguments) of each model to score: the compared one first, then the config's own."""
    model = config.model
    own = Path(model.adapter_name_or_path.split(",")[-1].strip().rstrip("/")).name if model.adapter_name_or_path \
        else Path(model.model_name_or_path.rstrip("/")).name
    other = config.evaluation.compare_with
    if not other:
        return [(own, model)]
    if other == "base":
        if not model.adapter_name_or_path:
            raise ConfigError("compare_base_without_adapter")
        label, args = "base", replace(model, adapter_name_or_path=None)
    else:
        label, args = Path(other.rstrip("/")).name, replace(model, adapter_name_or_path=other)
    return [(label, args), (own if own != label else f"{own} (config)", model)]


def run_benchmark(config: RunConfig, run_dir: Path, abort: Any = None) -> dict[str, Any]:
    """Score the config's model (and `compare_with`) on `task`; write lm_eval_results_*.json, results.json and
    results.log into the run folder."""
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.trainer_setup import compute_dtype

    ev = config.evaluation
    plan = resolve_tasks(ev.task or "", ev.task_dir, lang=ev.lang, n_shot=ev.n_shot)
    manager, loaded = load_tasks(plan, ev.download_mode)
    logger.info("%s: %d lm-eval tasks (%s), %d-shot, limit %s.", plan.task, len(loaded["tasks"]),
                ", ".join(plan.names), ev.n_shot, ev.limit or "none")
    tokenizer = load_tokenizer(config.model)
    if ev.apply_chat_template:  # the tokenizer's chat template becomes the run's template, as in training
        model_path = resolve_model_path(config.model.model_name_or_path)
        config.model.template = load_template(config.model.template, model_path, tokenizer,
                                              config.data.tool_format).name
    batch_size = ev.batch_size or config.training.per_device_eval_batch_size
    progress = ProgressLog(run_dir, 0, stage="eval")
    scores: dict[str, dict[str, Any]] = {}
    for label, model_args in compared_models(config):
        model = place_model(load_model(tokenizer, model_args, config.finetuning, is_trainable=False,
                                       compute_dtype=compute_dtype(config)), config)
        lm = wrap_model(model, tokenizer, batch_size, progress, abort)
        try:
            scores[label] = score(lm, loaded, label=label, n_shot=ev.n_shot, limit=ev.limit,
                                  seed=config.training.seed, manager=manager, chat=ev.apply_chat_template)
        except Stopped:
            logger.info("Stopped while scoring %s; the models scored before are kept.", label)
        else:
            write_lm_eval_json(run_dir / lm_eval_file(label), scores[label])
        del lm, model
        gc.collect()
        if abort is not None and abort.requested:
            break
    stopped = abort is not None and abort.requested
    if not stopped:
        progress.settle()  # lm-eval may have needed fewer passes than planned
    return write_results(run_dir, plan, config, scores, complete=not stopped)


def place_model(model: Any, config: RunConfig) -> Any:
    """Move the model to the GPU when there is one (a quantized model was placed by its device map already)."""
    import torch

    if torch.cuda.is_available() and not config.training.use_cpu and not getattr(model, "hf_device_map", None):
        model = model.to("cuda")
    return model
