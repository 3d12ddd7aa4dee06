"""The Train form's values → a flat engine config and its run folder (pure: no Gradio, testable on its own)."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

from engine.config.loader import KEYS
from engine.errors import StudioError
from engine.runfolder import has_results

# Form widgets that are not config keys: composites mapped below, or UI-only.
UI_ONLY = {"model_name", "model_path", "hub", "checkpoint", "quantization_bit", "booster", "compute_type",
           "extra_args", "run_name", "template", "rope_scaling", "dataset",
           "devices", "cpu_processes", "strategy", "offload_optimizer", "offload_params", "ray_address"}


def parse_extra_args(text: str | None) -> dict[str, Any]:
    """The 'extra settings' JSON object (empty text → {})."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise StudioError("extra_args_invalid", line=err.lineno, column=err.colno, problem=err.msg) from None
    if not isinstance(value, dict):
        raise StudioError("extra_args_not_object")
    return value


def _none_if_blank(value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    return value


def form_to_config(form: dict[str, Any]) -> dict[str, Any]:
    """The flat engine config the Train form's values by name stand for, without the run folder and the adapters
    to continue from (what the memory estimate reads; `build_train_config` adds both)."""
    from studio.widgets import booster_to_config, compute_type_to_config, strategy_to_config
    from studio.workspace import dataset_dir as workspace_dataset_dir

    config: dict[str, Any] = {k: v for k, v in form.items() if k not in UI_ONLY}
    config["model_name_or_path"] = (form.get("model_path") or "").strip()
    bits = form.get("quantization_bit")
    config["quantization_bit"] = None if bits in (None, "", "none") else int(bits)
    config["template"] = _none_if_blank(form.get("template"))
    config["rope_scaling"] = _none_if_blank(form.get("rope_scaling"))
    config.update(booster_to_config(form.get("booster") or "auto"))
    config.update(compute_type_to_config(form.get("compute_type") or "fp32"))
    datasets = form.get("dataset") or []
    config["dataset"] = ",".join(datasets) if isinstance(datasets, list) else datasets
    config.update(strategy_to_config(form.get("strategy") or "auto", bool(form.get("offload_optimizer")),
                                     bool(form.get("offload_params"))))
    for key in list(config):
        if key in KEYS and type(None) in typing.get_args(KEYS[key][2]):
            value = _none_if_blank(config[key])
            config[key] = None if value == 0 and not isinstance(value, bool) else value  # 0 means "off" there
    if not config.get("max_steps"):
        config["max_steps"] = -1  # the widget's 0 means "run all the epochs" (the engine's -1)
    config.update(parse_extra_args(form.get("extra_args")))
    config["dataset_dir"] = workspace_dataset_dir(config.get("dataset_dir"))
    return config


def build_train_config(form: dict[str, Any], *, run_name: str | None = None) -> tuple[dict[str, Any], Path]:
    """A flat config dict for `engine` and the run folder it goes into, from the form's values by name."""
    from studio.runs import default_run_name, run_folder, run_model_key
    from studio.widgets import checkpoint_to_config

    method = form["finetuning_type"]
    model_key = run_model_key(form.get("model_name"), form.get("model_path"))
    config = form_to_config(form)
    config.update(checkpoint_to_config(form.get("checkpoint") or [], model_key, method))
    config.update(parse_extra_args(form.get("extra_args")))  # the extra settings win, as they do in form_to_config
    name = run_name or (form.get("run_name") or "").strip() or default_run_name()
    run_dir = run_folder(model_key, method, name)
    config["output_dir"] = str(run_dir)
    return config, run_dir


def check_new_run(config: dict[str, Any], run_dir: Path) -> None:
    """Refuse, in the page's words, a Start whose run name is taken by a run with results (the engine's own
    refusal speaks of config keys the Train tab does not show)."""
    if config.get("resume_from_checkpoint") not in (None, False, "") or config.get("overwrite_output_dir"):
        return
    if has_results(run_dir):
        raise StudioError("run_name_taken", name=run_dir.name)
