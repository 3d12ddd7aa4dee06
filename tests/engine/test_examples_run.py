"""Every training example in examples/ runs a few steps on the tiny model, exactly as a user would start it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config, read_yaml
from engine.train.run import run_training
from engine.validation import validate_config

ROOT = Path(__file__).resolve().parents[2]
TRAINING_EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if "stage" in read_yaml(p))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("path", TRAINING_EXAMPLES, ids=lambda p: p.stem)
def test_example_trains(path: Path, tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    config = validate_config(load_config(path, [f"model_name_or_path={tiny_model_dir}", f"output_dir={out}",
                                                "max_steps=2", "logging_steps=1", "max_samples=16",
                                                "save_steps=1000", "overwrite_output_dir=true"]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished"
    records = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert [r["current_steps"] for r in records if "loss" in r][-1] == 2
    assert (out / "adapter_model.safetensors").is_file() or (out / "model.safetensors").is_file()
