"""The Train tab's estimate line beside Start: its text, the no-fit warning, where it is computed, and Measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from studio import estimate_line as line
from tests.studio.test_config_builder import form

GIB = 1024**3


@pytest.fixture()
def cpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.capabilities, "training_memory", lambda: (16.0, False))
    monkeypatch.setattr(line.capabilities, "device_count", lambda: 0)


def no_child(*args: Any, **kwargs: Any) -> dict:
    raise AssertionError("the estimate of the demo or a registered model runs in the studio's process")


def test_demo_line_names_each_part_and_the_parameter_counts(studio_home: Path, cpu_machine: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.supervisor, "run_json_child", no_child)
    text = line.estimate_line(form(), "en")
    assert text.startswith("Estimate: ~") and "per device" in text
    for part in ("weights", "gradients", "optimizer", "activations"):
        assert part in text
    assert "trainable of 1.3M parameters" in text and "⚠️" not in text
    assert "估算" in line.estimate_line(form(), "zh")


def test_a_run_that_does_not_fit_is_flagged(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.capabilities, "training_memory", lambda: (0.05, False))
    text = line.estimate_line(form(), "en")
    assert "⚠️" in text and "does not fit" in text and "Start still goes ahead" in text


def test_gpus_and_sharding_divide_a_registered_model(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line.capabilities, "training_memory", lambda: (4 * 80.0, True))
    monkeypatch.setattr(line.capabilities, "device_count", lambda: 4)
    monkeypatch.setattr("engine.estimate._cached_hub_config", lambda repo_id: None)
    monkeypatch.setattr(line.supervisor, "run_json_child", no_child)
    model = form(model_name="Qwen3-8B", model_path="Qwen/Qwen3-8B", finetuning_type="full", compute_type="bf16")
    ddp = line.estimate_line(model, "en")
    assert "approximate" in ddp and "8.0B trainable of 8.0B parameters" in ddp and "⚠️" in ddp
    assert "each of the 4 GPUs has 80.0 GB" in ddp
    zero3 = line.estimate_line({**model, "strategy": "zero3"}, "en")
    assert "⚠️" not in zero3


def test_a_typed_model_path_is_estimated_in_an_engine_child(studio_home: Path, cpu_machine: None,
                                                             tiny_model_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = line.supervisor.run_json_child

    def spy(argv: list[str], **kwargs: Any) -> dict:
        calls.append((argv, kwargs))
        return real(argv, **kwargs)

    monkeypatch.setattr(line.supervisor, "run_json_child", spy)
    text = line.estimate_line(form(model_name="Custom", model_path=str(tiny_model_dir)), "en")
    assert "trainable of 139.6K parameters" in text, text
    (argv, kwargs), = calls
    assert argv[3:9] == ["estimate", "-", "--devices", "1", "--memory-gb", "16.0"] and argv[-1] == "--cpu"
    assert kwargs["timeout"] == line.ESTIMATE_TIMEOUT
    assert yaml.safe_load(kwargs["stdin_text"])["model_name_or_path"] == str(tiny_model_dir)
    missing = line.estimate_line(form(model_name="Custom", model_path=str(studio_home / "nowhere")), "en")
    assert missing.startswith("Estimate unavailable") and "config.json" in missing


def test_measure_shows_the_probe_and_is_not_offered_in_the_public_demo(studio_home: Path, cpu_machine: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    estimate = {"weights": GIB, "gradients": GIB, "optimizer": 2 * GIB, "activations": GIB, "runtime": GIB // 4,
                "total": 5 * GIB + GIB // 4, "params": 10**9, "trainable_params": 10**9, "on_gpu": False}
    probe = {"steps": 4, "rss_growth_bytes": 3 * GIB, "tokens_per_second": 1234.5, "projected_seconds": 100.0,
             "total_steps": 300}
    seen: dict[str, Any] = {}

    def fake(argv: list[str], **kwargs: Any) -> dict:
        seen.update(argv=argv, env=kwargs.get("env"))
        return {"ok": True, "estimate": estimate, "fits": True, "probe": probe}

    monkeypatch.setattr(line.supervisor, "run_json_child", fake)
    text = line.measure_line(form(), "en")
    assert "Measured over 4 steps: peak 3.0 GB, 1,234 tokens/s" in text and "(300 steps)" in text
    assert "0:01:40" in text and "--probe" in seen["argv"]
    assert seen["env"] == {line.MEMORY_ENV: ""}  # a probe measures real training: no address-space cap
    monkeypatch.setattr(line.demo_mode, "active", lambda: object())
    assert line.measure_line(form(), "en") == line.t("train.estimate.measure_demo", "en")


def test_sizes_counts_and_durations_read_well() -> None:
    assert line.size_text(1.5 * GIB) == "1.5 GB" and line.size_text(300 * 1024**2) == "300 MB"
    assert line.count_text(8e9) == "8.0B" and line.count_text(77_824) == "77.8K" and line.count_text(12) == "12"
    assert line.duration_text(3725) == "1:02:05"


@pytest.mark.parametrize("changes", [{}, {"compute_type": "bf16", "strategy": "zero3", "offload_optimizer": True},
                                     {"quantization_bit": "4", "extra_args": '{"optim": "adamw_8bit"}',
                                      "booster": "sdpa", "max_steps": 20.0, "lora_alpha": 32.0}])
def test_form_config_is_the_config_start_would_write(studio_home: Path, changes: dict) -> None:
    from studio.config_builder import build_train_config

    started, _ = build_train_config(form(**changes))
    started.pop("output_dir")
    started.pop("adapter_name_or_path")  # adapters to continue from: left out of the estimate
    assert line.form_config(form(**changes)) == started
