"""Demo mode: the studio as a public hosted demo (Hugging Face Spaces, ModelScope Studios, `studio launch --demo`).

Every visitor works in a private workspace (see `studio.workspace`) and is trusted with nothing else. The demo is
deny-by-default: only allow-listed settings may change (`studio.demo_keys`), every path is confined to the
workspace (`studio.demo_paths`), caches live in the workspace (`job_env`), and budgets bound the real work: rows,
steps, tokens, generated tokens, workers, time and jobs at once (`studio.demo_budgets`). The limits come from
`STUDIO_DEMO_*` variables (`studio.demo_settings`). This module is the one the runner, the chat server and the
tabs import; it imports none of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import StudioError
from engine.eval.judge import endpoint_of
from studio.demo_budgets import check_budgets, check_capacity, check_chat_tokens, estimate_steps, limit_config
from studio.demo_keys import canonical_keys, check_allowed, typed_value
from studio.demo_paths import SHIPPED, confine_config, confine_path, model_allowed
from studio.demo_settings import DEFAULT_MODELS, DemoSettings
from studio.i18n import t

# The functions the runner, the chat server and the tabs call, whichever module of the demo holds them.
__all__ = ["DEFAULT_MODELS", "SHIPPED", "DemoSettings", "activate", "active", "apply_limits", "check_budgets",
           "check_capacity", "check_chat_tokens", "check_upload", "confine_path", "demo_requested", "detect_platform",
           "estimate_steps", "job_env", "limits_text", "model_allowed"]

# Keys that would publish to or authenticate against a hub.
HUB_KEYS = ("push_to_hub", "hub_model_id", "export_hub_model_id", "hf_hub_token", "ms_hub_token")


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


def apply_limits(config: dict[str, Any], command: str, workspace: Path, settings: DemoSettings) -> dict[str, Any]:
    """The config as the demo runs it, or a StudioError saying which rule it breaks and what to change.

    Deny by default: keys off the allow-list (`studio.demo_keys`) must keep the engine's default; every path is
    confined to the visitor's workspace and returned absolute; models must be allow-listed or the visitor's own
    runs; no remote code, no hub; the budgets the config alone decides are checked (`studio.demo_budgets`), and
    `max_samples` / `save_total_limit` get the demo's values when unset. Reads no data: what needs the real row
    count is `check_budgets`, called once an engine process has counted them.
    """
    config = canonical_keys(config)
    if typed_value(config, "trust_remote_code"):
        raise StudioError("demo_remote_code")
    if any(typed_value(config, key) for key in HUB_KEYS):
        raise StudioError("demo_hub_upload")
    check_allowed(config)
    config = confine_config(config, workspace, settings)
    config = limit_config(config, command, settings)
    if command == "eval" and config.get("task"):
        _check_local_task(str(config["task"]), config.get("task_dir"))
    if command == "judge" or typed_value(config, "judge_base_url"):
        _check_judge_endpoint(config, settings)
    return config


def job_env(workspace: Path) -> dict[str, str]:
    """Environment variables for a demo visitor's engine process: every cache or temporary file derived from their
    data lands inside their workspace (and is deleted with it), never in a cache other visitors read."""
    cache = workspace.resolve() / ".cache"
    env = {"STUDIO_TOKENIZED_CACHE": cache / "tokenized", "HF_DATASETS_CACHE": cache / "datasets",
           "TMPDIR": cache / "tmp", "TRITON_CACHE_DIR": cache / "triton", "TORCHINDUCTOR_CACHE_DIR": cache / "inductor"}
    env["TMPDIR"].mkdir(parents=True, exist_ok=True)  # Python's tempfile silently falls back to /tmp without it
    return {name: str(path) for name, path in env.items()}


def _check_local_task(task: str, task_dir: str | None) -> None:
    """The demo scores only benchmarks found on disk: a hub benchmark would download gigabytes for one visitor."""
    from engine.eval.tasks import list_tasks, parse_task, task_folder

    name, _ = parse_task(task)
    if not task_folder(task_dir, name).is_dir():
        local = [t for t in list_tasks(task_dir) if task_folder(task_dir, parse_task(t)[0]).is_dir()]
        raise StudioError("demo_eval_task", task=task, tasks=", ".join(local) or "-")


def _check_judge_endpoint(config: dict[str, Any], settings: DemoSettings) -> None:
    """The demo sends a visitor's predictions only to a judge endpoint its host listed (none unless listed), and
    judges at most max_samples rows of them."""
    url = str(typed_value(config, "judge_base_url") or "").strip()
    allowed = {endpoint_of(u) for u in settings.judge_endpoints}
    if not url or endpoint_of(url) not in allowed:
        raise StudioError("demo_judge_endpoint", url=url or "-", allowed=", ".join(sorted(allowed)) or "-")
    rows = typed_value(config, "judge_max_samples")
    if rows and rows > settings.max_samples:
        raise StudioError("demo_samples_limit", value=rows, limit=settings.max_samples)
    config["judge_max_samples"] = rows or settings.max_samples


def limits_text(settings: DemoSettings, lang: str) -> str:
    """The banner that tells visitors what the demo allows."""
    banner = t("demo.banner", lang, steps=settings.max_steps, samples=settings.max_samples,
               upload=f"{settings.max_upload_mb:g}", runs=settings.runs_per_visitor, total=settings.runs_total,
               hours=f"{settings.idle_minutes / 60:g}", models=", ".join(settings.models))
    budgets = t("demo.banner_budgets", lang, rows=f"{settings.max_rows:,}", tokens=f"{settings.max_train_tokens:,}",
                generated=f"{settings.max_generated_tokens:,}", minutes=f"{settings.max_job_minutes:g}")
    return f"{banner} {budgets}"


def check_upload(path: str | Path, settings: DemoSettings) -> None:
    """Refuse an uploaded file over the demo's size limit (rows are counted when it is read)."""
    size = Path(path).stat().st_size if Path(path).is_file() else 0
    if size > settings.max_upload_mb * 1024 * 1024:
        raise StudioError("demo_upload_too_big", size=f"{size / 1024 / 1024:.1f}", limit=f"{settings.max_upload_mb:g}")
