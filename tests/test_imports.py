"""Import boundaries, checked in fresh interpreters: the config stays torch-free and the engine never imports gradio."""

from __future__ import annotations

import subprocess
import sys

import pytest


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["engine.config", "engine.runfolder", "engine.data", "engine.templates",
                                    "engine.train", "engine.model.demo", "engine.cli", "engine.plotting"])
def test_light_modules_leave_torch_out(module: str):
    loaded = modules_after(f"import {module}")
    heavy = {"torch", "transformers", "peft", "trl", "datasets", "gradio"} & loaded
    assert not heavy, f"importing {module} loaded {heavy}"


def test_engine_training_modules_leave_gradio_out():
    loaded = modules_after("import engine.train.sft, engine.train.pt, engine.train.run, engine.model.loader")
    assert "gradio" not in loaded
