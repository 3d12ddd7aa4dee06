"""Run lm-evaluation-harness on a model our loader built (base, with adapters, quantized) and keep its results.

The model goes to lm-eval's HFLM wrapper as an object, so adapters (PEFT) and quantized bases (bitsandbytes)
load exactly as training and chat load them; lm-eval only scores. Its tasks are loaded before any model, so a
task that needs the network while offline fails in seconds with a message naming the offline benchmark.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from engine.atomic_write import write_text_atomic
from engine.errors import DataError
from engine.eval.tasks import OFFLINE_TASK, TaskPlan, task_manager

logger = logging.getLogger(__name__)
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
REUSE = "reuse_dataset_if_exists"


class Stopped(Exception):
    """An abort was requested between two batches."""


def load_tasks(plan: TaskPlan, download_mode: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(lm-eval's task manager, its tasks for the plan, their rows read or downloaded now); hub failures become one
    clear message. A `download_mode` other than reusing the dataset (LLaMA-Factory's key) fetches each task's
    dataset again that way, then builds the tasks again from it (lm-eval itself always reuses its cache)."""
    try:
        manager = _plan_manager(plan)
        loaded = manager.load(plan.names)
        if download_mode and download_mode != REUSE:
            refresh_datasets(loaded["tasks"].values(), download_mode)
            loaded = manager.load(plan.names)
        return manager, loaded
    except DataError:
        raise
    except Exception as err:  # every loading failure names the task and, for the hub, the way to work offline
        raise _load_error(err, plan) from err


def refresh_datasets(tasks: Any, download_mode: str) -> None:
    """Download each task's dataset again with `download_mode` (tasks that read their own rows are left alone)."""
    import datasets

    seen = set()
    for task in tasks:
        config = task.config
        key = (config.dataset_path, config.dataset_name, repr(config.dataset_kwargs))
        if config.custom_dataset is not None or not config.dataset_path or key in seen:
            continue
        seen.add(key)
        logger.info("Downloading %s%s again (%s).", config.dataset_path,
                    f" / {config.dataset_name}" if config.dataset_name else "", download_mode)
        kwargs = {k: v for k, v in (config.dataset_kwargs or {}).items() if k not in ("trust_remote_code", "download_mode")}
        datasets.load_dataset(config.dataset_path, config.dataset_name, download_mode=download_mode, **kwargs)


def _plan_manager(plan: TaskPlan) -> Any:
    """The shared index, or, when the plan holds groups built from CSV folders, a fresh one that registers them
    (lm-eval builds a group given as a dict with its own keys leaking into its tasks; a registered one it builds
    as it builds its own)."""
    inline = [spec for spec in plan.specs if isinstance(spec, dict)]
    if not inline:
        return task_manager(tuple(plan.include_path))
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._index import Entry, Kind

    manager = TaskManager(include_path=plan.include_path or None, include_defaults=len(inline) < len(plan.specs))
    for spec in inline:
        manager.task_index[spec["group"]] = Entry(name=spec["group"], kind=Kind.GROUP, yaml_path=None, cfg=spec)
    return manager


def _load_error(err: Exception, plan: TaskPlan) -> DataError:
    reason = f"{type(err).__name__}: {err}"[:300]
    offline = [k for k in OFFLINE_VARIABLES if os.environ.get(k, "").lower() in ("1", "true", "yes", "on")]
    network = isinstance(err, (ConnectionError, TimeoutError)) or any(
        word in reason for word in ("OfflineModeIsEnabled", "offline", "Connection", "NameResolution", "Max retries"))
    where = {"task": plan.task, "dataset": ", ".join(plan.hub) or "-", "offline_task": OFFLINE_TASK}
    if plan.hub and network and offline:
        return DataError("eval_task_needs_network", variables=", ".join(offline), reason=reason, **where)
    if plan.hub and network:
        return DataError("eval_task_unreachable", reason=reason, **where)
    return DataError("eval_task_load_failed", reason=reason, **where)


def wrap_model(model: Any, tokenizer: Any, batch_size: int, progress: Any, abort: Any) -> Any:
    """lm-eval's HFLM around our model; each forward pass advances `progress` and checks for an abort."""
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    call = lm._model_call

    def counted_call(*args: Any, **kwargs: Any) -> Any:
        if abort is not None and abort.requested:
            raise Stopped
        out = call(*args, **kwargs)
        progress.advance()
        return out

    def planned(method: Any) -> Any:
        def run(requests: list[Any], *args: Any, **kwargs: Any) -> Any:
            progress.grow(math.ceil(len(requests) / batch_size))  # at most this many passes (contexts are shared)
            return method(requests, *args, **kwargs)
        return run

    lm._model_call = counted_call
    for name in ("loglikelihood", "loglikelihood_rolling", "generate_until"):
        setattr(lm, name, planned(getattr(lm, name)))
    return lm


def score(lm: Any, loaded: dict[str, Any], *, label: str, n_shot: int | None, limit: float | None, seed: int,
          manager: Any, chat: bool = False) -> dict[str, Any]:
    """lm-eval's results for the loaded tasks, as its CLI writes them (without the per-sample logs), the model
    named `label`; with `chat`, prompts go through the tokenizer's chat template, the few-shot examples as earlier
    turns."""
    from dataclasses import asdict

    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import sanitize_model_name

    tasks = [*loaded["groups"].values(), *loaded["tasks"].values()]
    top = [item for item in tasks if not any(_name(item) in children for children in loaded["group_map"].values())]
    tracker = EvaluationTracker()  # what lm-eval's CLI adds to its file: model name, chat template, timing
    results = simple_evaluate(model=lm, tasks=top, task_manager=manager, num_fewshot=n_shot,
                              limit=int(limit) if limit and limit >= 1 else limit, log_samples=False,
                              random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                              fewshot_random_seed=seed, apply_chat_template=chat, fewshot_as_multiturn=chat,
                              evaluation_tracker=tracker)
    results.pop("samples", None)
    tracker.general_config_tracker.log_end_time()
    results.update(asdict(tracker.general_config_tracker))
    results.update(model_name=label, model_name_sanitized=sanitize_model_name(label))
    return results


def _name(item: Any) -> str:
    return getattr(item, "name", None) or getattr(item, "task_name", "")


def write_lm_eval_json(path: Path, results: dict[str, Any]) -> None:
    """lm-eval's results as its own CLI writes them (values it cannot serialize as text)."""
    import json

    from lm_eval.utils import handle_non_serializable

    write_text_atomic(path, json.dumps(results, indent=2, ensure_ascii=False, default=handle_non_serializable) + "\n")
