"""The limits of a public demo, read from `STUDIO_DEMO_*` variables (a module of its own so that the checks in
`studio.demo_budgets` and `studio.demo_paths` can name them without importing `studio.demo_mode`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# Small instruct models a CPU Space can fine-tune, and the offline vision and audio demos; the offline demo model is
# always allowed.
DEFAULT_MODELS = ("demo", "demo-vision", "demo-audio", "HuggingFaceTB/SmolLM2-135M-Instruct",
                  "Qwen/Qwen2.5-0.5B-Instruct")


@dataclass(frozen=True)
class DemoSettings:
    """The limits of a public demo (each overridable with `STUDIO_DEMO_<FIELD>`, upper case)."""

    max_steps: int = 300  # optimizer steps per training run
    max_samples: int = 2000  # rows used from each dataset
    max_rows: int = 10_000  # rows one job uses in all (after every dataset and repetition)
    max_train_tokens: int = 5_000_000  # steps × batch × accumulation × cutoff length, per training run
    max_generated_tokens: int = 2_000_000  # tokens a job may generate (GRPO, PPO, predictions)
    max_chat_tokens: int = 1024  # tokens of one chat answer
    max_workers: int = 2  # data loader and preprocessing worker processes per job
    max_checkpoints: int = 2  # checkpoints a run keeps on disk
    max_job_minutes: float = 60.0  # a job running longer is aborted
    max_upload_mb: float = 5.0  # size of one uploaded dataset file
    runs_per_visitor: int = 1  # training, evaluation or export jobs at once for one visitor
    runs_per_client: int = 2  # jobs at once from one network address (over all its workspaces)
    runs_total: int = 2  # jobs at once over all visitors
    chats_total: int = 2  # loaded chat models over all visitors
    new_workspaces_per_hour: int = 20  # new visitors (workspaces) one network address may open per hour
    idle_minutes: float = 120.0  # a workspace unused this long is deleted (runs, uploads, chat server)
    chat_idle_minutes: float = 30.0  # a chat model unused this long is unloaded
    models: tuple[str, ...] = DEFAULT_MODELS
    judge_endpoints: tuple[str, ...] = ()  # judge base URLs visitors may send predictions to (none by default)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DemoSettings:
        """Defaults, overridden by STUDIO_DEMO_MAX_STEPS, …, STUDIO_DEMO_MODELS and STUDIO_DEMO_JUDGE_ENDPOINTS
        (comma-separated)."""
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
            if field.name == "judge_endpoints":
                values["judge_endpoints"] = tuple(u.strip() for u in raw.split(",") if u.strip())
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
