"""Training stages: one workflow module per stage, each with `run(config, callbacks)`.

`STAGES` maps the stage id to its module, imported only when the stage runs, so this package stays torch-free.
`stage_module` picks the module a config runs: the stage's, or for `stage: dpo` a loss with a trainer of its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

STAGES: dict[str, str] = {
    "pt": "engine.train.pt",
    "sft": "engine.train.sft",
    "rm": "engine.train.rm",
    "dpo": "engine.train.dpo",
    "kto": "engine.train.kto",
    "ppo": "engine.train.ppo",
    "grpo": "engine.train.grpo",
}

# Preference losses that TRL trains with their own reference-free trainer: `stage: dpo` + `pref_loss: <key>`.
DPO_LOSS_MODULES: dict[str, str] = {
    "orpo": "engine.train.orpo",
    "simpo": "engine.train.simpo",
}


def stage_module(config: Any) -> str:
    """The workflow module that runs `config` (a RunConfig)."""
    ft = config.finetuning
    if ft.stage == "dpo" and ft.pref_loss in DPO_LOSS_MODULES:
        return DPO_LOSS_MODULES[ft.pref_loss]
    return STAGES[ft.stage]


def get_stage_runner(config: Any) -> Callable[..., Any]:
    """The `run` function of the workflow module that runs `config`."""
    return importlib.import_module(stage_module(config)).run
