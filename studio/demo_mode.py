"""Demo mode: the studio as a public hosted demo (Hugging Face Spaces, ModelScope Studios, `studio launch --demo`).

Every visitor trains in a private workspace (see `studio.workspace`) under limits that keep a shared machine
usable: allow-listed models only, a step cap, a row cap, an upload cap, one run per visitor and a few in total, no
paths outside the workspace, no remote code, no hub upload. The limits come from `STUDIO_DEMO_*` variables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.errors import StudioError

# Small instruct models a CPU Space can fine-tune; the offline demo model is always allowed.
DEFAULT_MODELS = ("demo", "HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B-Instruct")

# Config keys that name files or folders: in demo mode each must stay inside the visitor's workspace.
PATH_KEYS = ("adapter_name_or_path", "output_dir", "dataset_dir", "media_dir", "tokenized_path", "cache_dir",
             "export_dir", "logging_dir", "deepspeed", "ref_model_adapters", "reward_model", "reward_model_adapters",
             "save_dir", "task_dir", "export_quantization_dataset")
# Keys that would publish to or authenticate against a hub.
HUB_KEYS = ("push_to_hub", "hub_model_id", "export_hub_model_id", "hf_hub_token", "ms_hub_token")
# Read-only folders shipped with the studio that configs may point into (benchmarks, deepspeed presets).
SHIPPED = ("data", "evaluation", "examples")


@dataclass(frozen=True)
class DemoSettings:
    """The limits of a public demo (each overridable with `STUDIO_DEMO_<FIELD>`, upper case)."""

    max_steps: int = 300  # optimizer steps per training run
    max_samples: int = 2000  # rows used from each dataset
    max_upload_mb: float = 5.0  # size of one uploaded dataset file
    runs_per_visitor: int = 1  # training, evaluation or export jobs at once for one visitor
    runs_total: int = 2  # jobs at once over all visitors
    chats_total: int = 2  # loaded chat models over all visitors
    idle_minutes: float = 120.0  # a workspace unused this long is deleted (runs, uploads, chat server)
    chat_idle_minutes: float = 30.0  # a chat model unused this long is unloaded
    models: tuple[str, ...] = DEFAULT_MODELS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoSettings:
        """Defaults, overridden by STUDIO_DEMO_MAX_STEPS, …, STUDIO_DEMO_MODELS (comma-separated)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(f"STUDIO_DEMO_{field.name.upper()}")
            if raw is None or not raw.strip():
                continue
            if field.name == "models":
                models = tuple(m.strip() for m in raw.split(",") if m.strip())
                values["models"] = models if "demo" in models else ("demo", *models)
                continue
            kind = float if isinstance(field.default, float) else int
            try:
                number = kind(raw)
            except ValueError:
                raise SystemExit(f"error: STUDIO_DEMO_{field.name.upper()}={raw!r} is not a number; "
                                 f"set it to a positive {kind.__name__} (default {field.default}).") from None
            if number <= 0:
                raise SystemExit(f"error: STUDIO_DEMO_{field.name.upper()} must be positive (got {raw}).")
            values[field.name] = number
        return cls(**values)


def detect_platform(environ: Mapping[str, str] | None = None) -> str | None:
    """`spaces` on Hugging Face Spaces, `modelscope` on ModelScope Studios, else None."""
    environ = os.environ if environ is None else environ
    if environ.get("SPACE_ID") or environ.get("SYSTEM") == "spaces":
        return "spaces"
    if environ.get("MODELSCOPE_ENVIRONMENT") == "studio":
        return "modelscope"
    return None


def demo_requested(flag: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """`--demo`, STUDIO_DEMO=1, or a hosting platform's environment (STUDIO_DEMO=0 keeps it off there)."""
    environ = os.environ if environ is None else environ
    setting = environ.get("STUDIO_DEMO", "").strip().lower()
    if flag or setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    return detect_platform(environ) is not None


_active: DemoSettings | None = None


def activate(settings: DemoSettings | None) -> None:
    """Switch demo mode on (settings) or off (None) for this studio process."""
    global _active
    _active = settings


def active() -> DemoSettings | None:
    """The demo limits when demo mode is on, else None."""
    return _active


def model_allowed(model: str | None, settings: DemoSettings) -> bool:
    """Whether the demo may load `model`: an allow-listed id, or the same registry model on the other hub."""
    from engine.model.families import list_models, model_path

    model = (model or "").strip()
    if model in settings.models:
        return True
    return any(model_path(name, "modelscope") == model for name in list_models()
               if model_path(name) in settings.models)


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_paths(config: Mapping[str, Any], workspace: Path) -> None:
    """Every path-like value must resolve inside the workspace (or into the shipped read-only folders)."""
    from engine.paths import resource_dir

    workspace = workspace.resolve()
    shipped = [resource_dir(name).resolve() for name in SHIPPED]
    for key in PATH_KEYS:
        value = config.get(key)
        if value in (None, "", False):
            continue
        for part in (str(value).split(",") if key.endswith("adapter_name_or_path") or key.endswith("_adapters")
                     else [str(value)]):
            given = Path(part.strip()).expanduser()
            if ".." in given.parts:
                raise StudioError("demo_path_outside", key=key, path=part.strip())
            resolved = (given if given.is_absolute() else workspace / given).resolve()
            if not _inside(resolved, [workspace, *shipped]):
                raise StudioError("demo_path_outside", key=key, path=part.strip())


def estimate_steps(config: Mapping[str, Any], rows: int) -> int:
    """Optimizer steps a run over `rows` examples would take (one process; packing can only make it fewer)."""
    per_step = max(1, int(config.get("per_device_train_batch_size") or 1)) * max(
        1, int(config.get("gradient_accumulation_steps") or 1))
    epochs = float(config.get("num_train_epochs") or 1.0)
    return math.ceil(math.ceil(rows / per_step) * epochs)


def count_rows(config: Mapping[str, Any]) -> int | None:
    """Training rows the config would use (local datasets only; None when a dataset comes from the hub)."""
    from engine.data import get_dataset_attrs, load_examples

    names, dataset_dir = config.get("dataset"), config.get("dataset_dir")
    if not names:
        return 0
    attrs = get_dataset_attrs(names, dataset_dir)
    if any(attr.load_from != "file" for attr in attrs):
        return None
    stage = config.get("stage") or "sft"
    examples = load_examples(names, dataset_dir, require_response=stage != "pt",
                             max_samples=config.get("max_samples"), seed=int(config.get("seed") or 42))
    val = float(config.get("val_size") or 0)
    if val and not config.get("eval_dataset"):
        held = int(val) if val >= 1 else math.ceil(len(examples) * val)
        return max(0, len(examples) - held)
    return len(examples)


def apply_limits(config: dict[str, Any], command: str, workspace: Path, settings: DemoSettings) -> dict[str, Any]:
    """The config as the demo runs it, or a StudioError saying which limit it breaks and what to change.

    Sets `max_samples` to the row cap when unset; refuses more steps than the cap (counted from the data when
    `max_steps` is off), models off the allow-list, remote code, hub upload and paths outside the workspace.
    """
    config = dict(config)
    model = config.get("model_name_or_path")
    if not model_allowed(model, settings):
        raise StudioError("demo_model_not_allowed", model=str(model), allowed=", ".join(settings.models))
    for key in ("ref_model",):
        if config.get(key) and not model_allowed(config[key], settings):
            raise StudioError("demo_model_not_allowed", model=str(config[key]), allowed=", ".join(settings.models))
    if config.get("trust_remote_code"):
        raise StudioError("demo_remote_code")
    if any(config.get(key) for key in HUB_KEYS):
        raise StudioError("demo_hub_upload")
    check_paths(config, workspace)
    samples = config.get("max_samples")
    if samples and int(samples) > settings.max_samples:
        raise StudioError("demo_samples_limit", value=int(samples), limit=settings.max_samples)
    config["max_samples"] = int(samples) if samples else settings.max_samples
    if command == "eval" and config.get("task"):
        _check_local_task(str(config["task"]), config.get("task_dir"))
    if command == "train":
        steps = int(config.get("max_steps") or 0)
        if steps > settings.max_steps:
            raise StudioError("demo_steps_limit", value=steps, limit=settings.max_steps)
        if steps <= 0:
            rows = count_rows(config)
            if rows is None:
                raise StudioError("demo_steps_unknown", limit=settings.max_steps)
            estimate = estimate_steps(config, rows)
            if estimate > settings.max_steps:
                raise StudioError("demo_steps_estimate", value=estimate, limit=settings.max_steps)
    return config


def _check_local_task(task: str, task_dir: str | None) -> None:
    """The demo scores only benchmarks found on disk: a hub benchmark would download gigabytes for one visitor."""
    from engine.eval.tasks import list_tasks, parse_task, task_folder

    name, _ = parse_task(task)
    if not task_folder(task_dir, name).is_dir():
        local = [t for t in list_tasks(task_dir) if task_folder(task_dir, parse_task(t)[0]).is_dir()]
        raise StudioError("demo_eval_task", task=task, tasks=", ".join(local) or "-")


def limits_text(settings: DemoSettings, lang: str) -> str:
    """The banner that tells visitors what the demo allows."""
    from studio.i18n import t

    return t("demo.banner", lang, steps=settings.max_steps, samples=settings.max_samples,
             upload=f"{settings.max_upload_mb:g}", runs=settings.runs_per_visitor, total=settings.runs_total,
             hours=f"{settings.idle_minutes / 60:g}", models=", ".join(settings.models))


def check_upload(path: str | Path, settings: DemoSettings) -> None:
    """Refuse an uploaded file over the demo's size limit (rows are counted when it is read)."""
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if size > settings.max_upload_mb * 1024 * 1024:
        raise StudioError("demo_upload_too_big", size=f"{size / 1024 / 1024:.1f}", limit=f"{settings.max_upload_mb:g}")
