"""Shared fixtures: the tiny model is built once per test session; runs that several tests read are trained once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

# Nothing in the test suite may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

TINY_MODEL = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128,
              "vocab_size": 1024}


@pytest.fixture(scope="session", autouse=True)
def tokenized_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tokenization cache of every test in a temporary folder, never the repository's saves/."""
    folder = tmp_path_factory.mktemp("tokenized-cache")
    previous = os.environ.get("STUDIO_TOKENIZED_CACHE")
    os.environ["STUDIO_TOKENIZED_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("STUDIO_TOKENIZED_CACHE", None)
    else:
        os.environ["STUDIO_TOKENIZED_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo-architecture model (hidden 64, 2 layers) with its tokenizer and ChatML template."""
    from engine.model.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "tiny", **TINY_MODEL)


@pytest.fixture(scope="session")
def vision_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline vision demo model (a tiny Qwen2-VL), built once per test session."""
    from engine.multimodal.demo_vision import build_vision_demo

    return build_vision_demo(tmp_path_factory.mktemp("models") / "demo-vision")


@pytest.fixture(scope="session")
def audio_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline audio demo model (a tiny Qwen2-Audio), built once per test session."""
    from engine.multimodal.demo_audio import build_audio_demo

    return build_audio_demo(tmp_path_factory.mktemp("models") / "demo-audio")


@pytest.fixture()
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty STUDIO_HOME (with saves/) as the working directory."""
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "saves").mkdir()
    return tmp_path
