"""Training stages: one workflow module per stage, each with `run(config, callbacks)`.

`STAGES` maps the stage id to its module, imported only when the stage runs, so this package stays torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

STAGES: dict[str, str] = {
    "pt": "engine.train.pt",
    "sft": "engine.train.sft",
}


def get_stage_runner(stage: str) -> Callable[..., Any]:
    """The `run` function of a stage's workflow module."""
    return importlib.import_module(STAGES[stage]).run
