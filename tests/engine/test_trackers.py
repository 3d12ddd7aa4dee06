"""Callbacks set up from config keys: SwanLab and Trackio logging offline into the run folder, tracker packages
checked, and early stopping (early_stopping_steps or early_stopping_patience)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerControl

from engine.config import load_config
from engine.errors import ConfigError
from engine.train.callbacks import EarlyStopping
from engine.train.method_checks import check_early_stopping
from engine.train.run import run_training
from engine.train.trainer_setup import make_callbacks, transformers_trackers, uses_swanlab
from engine.validation import validate_config

SECRET = "sk-swanlab-test-secret-0123456789"


def train(model_dir: Path, out: Path, *overrides: str) -> Path:
    config = validate_config(load_config(None, [
        f"model_name_or_path={model_dir}", f"output_dir={out}", "dataset=identity", "max_samples=8", "max_steps=2",
        "logging_steps=1", "per_device_train_batch_size=4", "cutoff_len=128", "save_steps=1000", "seed=7",
        *overrides]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


@pytest.mark.slow
def test_swanlab_local_mode_logs_into_the_run_folder(tiny_model_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("swanlab")
    monkeypatch.setenv("SWANLAB_API_KEY", "")
    monkeypatch.delenv("SWANLAB_API_KEY")  # the run sets it: put the environment back afterwards
    out = train(tiny_model_dir, tmp_path / "run", "use_swanlab=true", "swanlab_mode=local",
                "swanlab_project=studio-tests", f"swanlab_api_key={SECRET}")
    runs = list((out / "swanlog").glob("run-*"))
    assert len(runs) == 1, list((out / "swanlog").iterdir())
    assert any(path.suffix == ".swanlab" for path in runs[0].iterdir())  # the logged metrics, for `swanlab sync`
    assert (runs[0] / "files" / "config.yaml").is_file()
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in {".txt", ".yaml", ".json", ".jsonl", ".log"}:
            assert SECRET not in path.read_text(errors="replace"), path
    import swanlab

    assert not swanlab.has_run()  # closed at the end of training: the next run starts its own


@pytest.mark.slow
def test_trackio_logs_into_the_run_folder(tiny_model_dir: Path, tmp_path: Path):
    """In an engine process of its own, as every run has: trackio fixes its log folder when first imported."""
    import subprocess

    if importlib.util.find_spec("trackio") is None:
        pytest.skip("trackio is not installed")
    out = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key not in ("TRACKIO_DIR", "TRACKIO_SPACE_ID")}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "train", f"model_name_or_path={tiny_model_dir}", f"output_dir={out}",
         "dataset=identity", "max_samples=8", "max_steps=2", "logging_steps=1", "per_device_train_batch_size=4",
         "cutoff_len=128", "save_steps=1000", "report_to=trackio", "project=studio-tests"],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2], timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "trackio" / "studio-tests.db").is_file()


def config_for(*overrides: str) -> Any:
    return load_config(None, ["model_name_or_path=demo", *overrides])


def test_report_to_goes_to_transformers_except_swanlab(monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name in ("tensorboard", "swanlab") else real(name, *a))
    assert transformers_trackers(config_for("report_to=none")) == []
    assert transformers_trackers(config_for("report_to=tensorboard")) == ["tensorboard"]
    assert transformers_trackers(config_for("report_to=swanlab")) == []
    assert "swanlab" not in transformers_trackers(config_for("report_to=all"))
    assert uses_swanlab(config_for("report_to=swanlab")) and uses_swanlab(config_for("use_swanlab=true"))
    assert not uses_swanlab(config_for("report_to=tensorboard"))


def test_missing_tracker_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        transformers_trackers(config_for("report_to=wandb"))
    assert info.value.key == "tracker_missing" and 'pip install "llm-studio[trackers]"' in str(info.value)


def test_missing_swanlab_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "swanlab" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        make_callbacks(config_for("use_swanlab=true"), tmp_path, None)
    assert info.value.key == "swanlab_missing" and "llm-studio[trackers]" in str(info.value)


# ---------------------------------------------------------------- early stopping


def evaluate(callback: EarlyStopping, values: list[float], key: str = "eval_loss") -> int:
    """Feed the evaluations to the callback; the number of them seen when it asked to stop (0: never)."""
    for count, value in enumerate(values, start=1):
        control = TrainerControl()
        callback.on_evaluate(None, None, control, metrics={key: value})
        if control.should_training_stop:
            return count
    return 0


def test_early_stopping_counts_evaluations_without_improvement():
    assert evaluate(EarlyStopping(2), [3.0, 2.0, 2.5, 2.1, 2.2]) == 4
    assert evaluate(EarlyStopping(2), [3.0, 2.0, 2.5, 1.0, 2.2]) == 0  # 1.0 resets the count
    assert evaluate(EarlyStopping(1, "accuracy"), [0.5, 0.7, 0.6], "eval_accuracy") == 3  # higher is better
    assert evaluate(EarlyStopping(1, "eval_loss", greater_is_better=True), [1.0, 0.5]) == 2


@pytest.mark.parametrize(("overrides", "patience"), [
    (("early_stopping_steps=3",), 3), (("early_stopping_patience=2",), 2),
    (("early_stopping_steps=4", "early_stopping_patience=4"), 4), ((), None),
])
def test_early_stopping_from_either_key(tmp_path: Path, overrides: tuple[str, ...], patience: int | None):
    config = config_for(*overrides)
    check_early_stopping(config)
    found = [c for c in make_callbacks(config, tmp_path, None) if isinstance(c, EarlyStopping)]
    assert [c.patience for c in found] == ([patience] if patience else [])


def test_early_stopping_keys_must_agree():
    with pytest.raises(ConfigError) as info:
        check_early_stopping(config_for("early_stopping_steps=3", "early_stopping_patience=5"))
    assert info.value.key == "early_stopping_conflict"


@pytest.mark.slow
def test_early_stopping_steps_stops_a_run(tiny_model_dir: Path, tmp_path: Path):
    # Evaluation loss rises under a learning rate far too high: one evaluation without improvement stops the run.
    out = train(tiny_model_dir, tmp_path / "run", "finetuning_type=full", "learning_rate=1.0", "max_steps=30",
                "val_size=4", "eval_strategy=steps", "eval_steps=1", "early_stopping_steps=1")
    steps = [json.loads(line)["current_steps"] for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert max(steps) < 30
