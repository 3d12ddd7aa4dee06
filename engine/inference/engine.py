"""Choose and load the inference backend for a config, serving a run folder the way it was trained.

`load_backend(config)` is the entry point of `studio api`, `studio chat` and the studio's Chat tab. When
`adapter_name_or_path` points at a run folder (or one of its `checkpoint-N` folders), the run's `config.yaml`
supplies the base model, the tokenizer settings, the template and the generation settings, so the model is
served exactly as it was trained; keys the inference config sets itself win (a different template is logged as a
warning). A full or freeze run's folder is served as the model itself.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from engine.config import RunConfig, config_from_dict, known_keys, read_yaml
from engine.config.loader import ALIASES
from engine.inference.backend import ChatBackend, Completion, InferenceError, Sampling, StopMatcher
from engine.inference.hf_backend import HFBackend
from engine.inference.vllm_backend import VLLMBackend, check_vllm_available
from engine.model.methods import adapter_methods
from engine.runfolder import CONFIG_FILE
from engine.validation import validate_config

__all__ = [
    "ChatBackend",
    "Completion",
    "HFBackend",
    "InferenceError",
    "Sampling",
    "StopMatcher",
    "VLLMBackend",
    "check_vllm_available",
    "explicit_keys",
    "load_backend",
    "resolve_inference_config",
]

logger = logging.getLogger(__name__)

BACKENDS: dict[str, type[ChatBackend]] = {"huggingface": HFBackend, "hf": HFBackend, "vllm": VLLMBackend}

# Model keys a run's tokenizer and weights depend on: taken from the run unless the inference config sets them.
# Never trust_remote_code: running a model's own code is only ever what the user set for this job.
RUN_MODEL_KEYS = ("model_name_or_path", "model_revision", "cache_dir", "use_fast_tokenizer",
                  "split_special_tokens", "add_tokens", "add_special_tokens", "resize_vocab", "rope_scaling",
                  "new_special_tokens_config", "init_special_tokens")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def explicit_keys(raw: dict[str, Any]) -> set[str]:
    """The config keys a YAML mapping (file plus overrides) sets, old names translated."""
    return {ALIASES.get(str(key), str(key)) for key in raw}


def _split(names: str | None) -> list[str]:
    return [name.strip() for name in (names or "").split(",") if name.strip()]


def find_run_folder(path: str | Path) -> Path | None:
    """The run folder that holds `config.yaml` for `path` (the run itself or one of its checkpoints), or None."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    if (folder / CONFIG_FILE).is_file():
        return folder
    if folder.name.startswith("checkpoint-") and (folder.parent / CONFIG_FILE).is_file():
        return folder.parent
    return None


def read_run_config(run_dir: Path) -> RunConfig:
    """The config a run started from; keys this version does not know are skipped with a warning."""
    raw = read_yaml(run_dir / CONFIG_FILE)
    known = set(known_keys())
    unknown = sorted(str(k) for k in raw if ALIASES.get(str(k), str(k)) not in known)
    if unknown:
        logger.warning("%s: ignoring keys this version does not know: %s", run_dir / CONFIG_FILE, ", ".join(unknown))
    return config_from_dict({k: v for k, v in raw.items() if str(k) not in unknown}, source=str(run_dir / CONFIG_FILE))


def _weights_kind(folder: Path) -> str | None:
    if any((folder / name).is_file() for name in ADAPTER_WEIGHTS) and (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / "config.json").is_file() and any((folder / name).is_file() for name in MODEL_WEIGHTS):
        return "model"
    return None


def _changed_keys(config: RunConfig) -> set[str]:
    """Keys whose value differs from the default (what a caller without the raw YAML treats as explicit)."""
    changed = set()
    for group_name in ("model", "generation", "data"):
        group = getattr(config, group_name)
        default = type(group)()
        changed |= {f.name for f in dataclasses.fields(group) if getattr(group, f.name) != getattr(default, f.name)}
    return changed


def _take_from_run(config: RunConfig, run: RunConfig, explicit: set[str]) -> None:
    """Copy the run's tokenizer/model keys, template, thinking mode and generation settings the config leaves open."""
    for key in RUN_MODEL_KEYS:
        mine, theirs = getattr(config.model, key), getattr(run.model, key)
        if key in explicit and mine != theirs:
            logger.warning("%s: the run used %r, the inference config says %r; using %r.", key, theirs, mine, mine)
        elif key not in explicit:
            setattr(config.model, key, theirs)
    if run.model.trust_remote_code and not config.model.trust_remote_code:
        logger.warning("The run was trained with trust_remote_code: true; it is not carried over (it runs the model's "
                       "own Python code). If you trust that code, set trust_remote_code=true for this job (the Chat "
                       "tab's or the inference config's setting).")
    if config.model.template and run.model.template and config.model.template != run.model.template:
        logger.warning("template: the run was trained with %r, the inference config says %r; using %r.",
                       run.model.template, config.model.template, config.model.template)
    config.model.template = config.model.template or run.model.template
    if "enable_thinking" not in explicit:
        config.data.enable_thinking = run.data.enable_thinking
    for f in dataclasses.fields(config.generation):
        if f.name not in explicit:
            setattr(config.generation, f.name, getattr(run.generation, f.name))


def resolve_inference_config(config: RunConfig, explicit: set[str] | None = None) -> tuple[RunConfig, str]:
    """(the config to serve, the model id clients use), after reading the run folder the adapter comes from.

    `explicit` names the keys the user set (see `explicit_keys`); without it, keys that differ from their
    default count as set. The config is changed in place and validated (without loading anything).
    """
    explicit = _changed_keys(config) if explicit is None else explicit
    adapters = _split(config.model.adapter_name_or_path)
    model_id = Path(config.model.model_name_or_path.rstrip("/")).name or "model"
    if adapters and (run_dir := find_run_folder(adapters[-1])) is not None:
        folder = Path(adapters[-1]).expanduser()
        run = read_run_config(run_dir)
        _take_from_run(config, run, explicit)
        kind = _weights_kind(folder)
        if kind is None:
            raise InferenceError("run_has_no_weights", path=str(folder))
        if kind == "model":  # a full/freeze run: the folder is the model
            config.model.model_name_or_path = str(folder)
            config.model.adapter_name_or_path = None
        else:
            # Training merged every adapter it started from except the one it continued (all, with
            # create_new_adapter): the same ones must sit under the run's adapter at inference.
            earlier = _split(run.model.adapter_name_or_path)
            merged = earlier if run.finetuning.create_new_adapter else earlier[:-1]
            config.model.adapter_name_or_path = ",".join([*merged, *adapters[:-1], str(folder)])
            config.finetuning.finetuning_type = run.finetuning.finetuning_type if run.finetuning.finetuning_type in \
                adapter_methods() else "lora"  # saved adapters load by their own type (adapter_config.json)
        model_id = run_dir.name if folder.resolve() == run_dir.resolve() else f"{run_dir.name}/{folder.name}"
        logger.info("Serving run %s: model %s, adapters %s, template %s.", run_dir, config.model.model_name_or_path,
                    config.model.adapter_name_or_path or "none", config.model.template or "(the model's)")
    elif not adapters and (run_dir := find_run_folder(config.model.model_name_or_path)) is not None:
        run = read_run_config(run_dir)  # a full run given as the model: its template and generation settings
        _take_from_run(config, run, explicit | {"model_name_or_path"})
        model_id = run_dir.name
    validate_config(config, "infer")
    return config, model_id


def load_backend(config: RunConfig, explicit: set[str] | None = None) -> ChatBackend:
    """The loaded backend `infer_backend` names (vLLM: only when installed and a CUDA GPU is visible)."""
    config, model_id = resolve_inference_config(config, explicit)
    backend_class = BACKENDS[config.model.infer_backend]
    if backend_class is VLLMBackend:
        check_vllm_available()
    backend = backend_class.load(config, model_id)
    backend.enable_thinking = config.data.enable_thinking
    return backend
