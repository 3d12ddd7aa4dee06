"""The job lifecycle every engine command shares: task, lock, config, final state with its real cause, clean-up.

Bodies are stand-ins (a fake stage, a fake benchmark, a fake export), so each test runs in about a second.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_config, save_config
from engine.errors import ConfigError
from engine.runfolder import TrainerLogWriter, list_checkpoints, read_trainer_log

HUB_MODEL = "org/some-model"  # a hub id: config checks pass and nothing is loaded


def status_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "status.json").read_text())


def complete_checkpoint(run: Path, step: int) -> Path:
    """A checkpoint as the Trainer leaves it: trainer_state.json is the last file it writes."""
    folder = run / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


@pytest.fixture()
def fake_stage(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[..., Any]], None]:
    """Make `stage: sft` run the given function instead of the real workflow."""
    from engine.train import STAGES

    def install(body: Callable[..., Any]) -> None:
        monkeypatch.setitem(sys.modules, "fake_stage_for_tests", types.SimpleNamespace(run=body))
        monkeypatch.setitem(STAGES, "sft", "fake_stage_for_tests")

    return install


def train_config(run: Path, *extra: str):
    return load_config(None, [f"model_name_or_path={HUB_MODEL}", f"output_dir={run}", "dataset=identity", *extra])


# ---------------------------------------------------------------- one lifecycle, every kind


def _train(tmp_path: Path, fake_stage: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    from engine.train.run import run_training

    fake_stage(lambda config, **kw: None)
    run = tmp_path / "train"
    assert run_training(train_config(run)) == 0
    return run


def _eval(tmp_path: Path, fake_stage: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    from engine.eval import benchmark
    from engine.eval.run import run_eval

    monkeypatch.setattr(benchmark, "run_benchmark", lambda config, run_dir, abort: {})
    run = tmp_path / "eval"
    config = load_config(None, [f"model_name_or_path={HUB_MODEL}", f"output_dir={run}", "task=studio_bench_test"])
    assert run_eval(config) == 0
    return run


def _export(tmp_path: Path, fake_stage: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    from engine.export import run as export_run

    monkeypatch.setattr(export_run, "export_model", lambda config, run_dir, progress, size=None: {"files": []})
    run = tmp_path / "export"
    assert export_run.run_export(load_config(None, {"model_name_or_path": HUB_MODEL, "export_dir": str(run)})) == 0
    return run


@pytest.mark.parametrize(("kind", "start"), [("train", _train), ("eval", _eval), ("export", _export)])
def test_every_job_kind_records_its_task_and_config(kind: str, start: Any, tmp_path: Path, fake_stage: Any,
                                                    monkeypatch: pytest.MonkeyPatch):
    run = start(tmp_path, fake_stage, monkeypatch)
    status = status_of(run)
    assert status["task"] == kind and status["state"] == "finished" and status["exit_code"] == 0
    assert status["pid"] == os.getpid() and status["started_at"] and status["ended_at"] and status["error"] is None
    assert f"{HUB_MODEL}" in (run / "config.yaml").read_text()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")], "no temporary file is left behind"


def test_a_leftover_temporary_file_does_not_break_a_start(tmp_path: Path):
    """A second start of the same folder (or a crash mid-write) leaves `.config.yaml.tmp`: names must be unique."""
    run = tmp_path / "run"
    (run / ".config.yaml.tmp").mkdir(parents=True)
    save_config(train_config(run), run / "config.yaml")
    assert "output_dir" in (run / "config.yaml").read_text()

    writer = TrainerLogWriter(run)
    for step in (1, 2, 3):
        writer.write({"current_steps": step})
    (run / ".trainer_log.jsonl.tmp").mkdir()
    writer.truncate_after(2)
    assert [r["current_steps"] for r in read_trainer_log(run)[0]] == [1, 2]


# ---------------------------------------------------------------- the real cause of a failure


def _disk_full_in_a_checkpoint(run_dir: Path) -> None:
    complete_checkpoint(run_dir, 2)
    partial = run_dir / "checkpoint-3"
    partial.mkdir()
    (partial / "adapter_model.safetensors").write_bytes(b"half")
    raise OSError(errno.ENOSPC, "No space left on device", str(partial / "optimizer.pt"))


def test_disk_full_during_a_checkpoint_names_the_file_and_the_disk(tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    fake_stage(lambda config, run_dir, **kw: _disk_full_in_a_checkpoint(run_dir))
    run = tmp_path / "run"
    assert run_training(train_config(run)) == 1
    status = status_of(run)
    error = status["error"]
    assert status["state"] == "failed" and status["task"] == "train"
    assert "disk is full" in error.lower() and str(run / "checkpoint-3" / "optimizer.pt") in error
    assert "free" in error and "output_dir" in error, "says how much is free and what to do"
    assert not (run / "checkpoint-3").exists(), "the half-written checkpoint is removed"
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-2"]


def _raise(exc: BaseException) -> Callable[..., None]:
    def body(*args: Any, **kwargs: Any) -> None:
        raise exc

    return body


@pytest.mark.parametrize("make", [
    lambda: MemoryError(),
    lambda: __import__("torch").OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
])
def test_out_of_memory_says_so_with_a_hint(make: Callable[[], BaseException], tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    fake_stage(_raise(make()))
    run = tmp_path / "run"
    assert run_training(train_config(run)) == 1
    error = status_of(run)["error"]
    assert "out of memory" in error.lower()
    assert "per_device_train_batch_size" in error and "cutoff_len" in error


def test_disk_full_reported_by_a_library_as_text(tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    fake_stage(_raise(RuntimeError("Error while serializing: No space left on device (os error 28)")))
    run = tmp_path / "run"
    assert run_training(train_config(run)) == 1
    assert "disk is full" in status_of(run)["error"].lower()


def test_a_config_error_keeps_its_message(tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    problem = ConfigError("no_dataset")
    fake_stage(_raise(problem))
    run = tmp_path / "run"
    assert run_training(train_config(run)) == 1
    assert status_of(run)["error"] == problem.message()


def test_an_interrupt_ends_as_aborted(tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    fake_stage(_raise(KeyboardInterrupt()))
    run = tmp_path / "run"
    assert run_training(train_config(run)) == 0
    assert status_of(run)["state"] == "aborted"


# ---------------------------------------------------------------- nothing user-placed is unpickled


class Planted:
    """Unpickling this creates `path`: proof that a planted file ran code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def plant(folder: Path, name: str, marker: Path, *, raw: bool) -> None:
    import torch

    if raw:  # a plain pickle, which torch.load(weights_only=False) falls back to
        (folder / name).write_bytes(pickle.dumps({"cpu": Planted(marker)}))
    else:
        torch.save({"cpu": Planted(marker)}, folder / name)


@pytest.mark.parametrize("raw", [True, False])
def test_a_planted_pickle_in_a_checkpoint_is_refused_before_loading(raw: bool, tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    calls: list[str] = []
    fake_stage(lambda config, resume, **kw: calls.append(resume))
    run = tmp_path / "run"
    checkpoint = complete_checkpoint(run, 4)
    marker = tmp_path / "pwned"
    plant(checkpoint, "rng_state.pth", marker, raw=raw)
    assert run_training(train_config(run, "resume_from_checkpoint=true")) == 1
    assert not marker.exists() and not calls, "refused before the stage (and the Trainer) saw the checkpoint"
    error = status_of(run)["error"]
    assert "rng_state.pth" in error and "unsafe" in error.lower()


def test_checkpoint_check_accepts_what_the_trainer_saves(tmp_path: Path):
    import random

    import numpy as np
    import torch

    from engine.train.checkpoints import check_checkpoint_files

    folder = complete_checkpoint(tmp_path, 1)
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               folder / "rng_state.pth")
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    check_checkpoint_files(folder)


def test_a_failed_ppo_save_removes_its_checkpoint(tmp_path: Path):
    from engine.train.ppo import save_checkpoint

    def save_pretrained(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "adapter_model.safetensors"))

    state = types.SimpleNamespace(step=3, model=types.SimpleNamespace(save_pretrained=save_pretrained))
    with pytest.raises(OSError):
        save_checkpoint(train_config(tmp_path), state, tmp_path)
    assert not (tmp_path / "checkpoint-3").exists()


def test_files_written_owner_only_get_the_usual_permissions(tmp_path: Path, fake_stage: Any):
    from engine.train.run import run_training

    def save_like_safetensors(config: Any, run_dir: Path, **kwargs: Any) -> None:
        fd = os.open(run_dir / "adapter_model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)  # as a temp file is
        os.close(fd)

    fake_stage(save_like_safetensors)
    run = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert run_training(train_config(run)) == 0
    finally:
        os.umask(old)
    assert (run / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644
