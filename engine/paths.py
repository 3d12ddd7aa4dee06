"""Where the studio keeps things: STUDIO_HOME, saves/, and the shipped data/ and locales/ folders."""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
_BUNDLED = Path(__file__).resolve().parent / "_bundled"


def resource_dir(name: str) -> Path:
    """A folder shipped with the project (`data`, `locales`, `examples`): the source tree's, else the bundled copy."""
    for root in (_SOURCE_ROOT, _BUNDLED):
        candidate = root / name
        if candidate.is_dir():
            return candidate
    return _SOURCE_ROOT / name


def looks_like_local_path(name: str) -> bool:
    """Whether a model name is meant as a folder (hub ids are `org/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep == "\\" and "\\" in name


def studio_home() -> Path:
    """The folder holding `saves/` (env STUDIO_HOME, default: the working directory)."""
    return Path(os.environ.get("STUDIO_HOME") or os.getcwd()).resolve()


def saves_dir() -> Path:
    """Run outputs, the built demo model and the studio's small state."""
    return studio_home() / "saves"


def default_dataset_dir() -> Path:
    """`data/` in the working directory when it has a registry, else STUDIO_HOME's (where the studio keeps its
    datasets and uploads), else the shipped one."""
    for local in (Path.cwd() / "data", studio_home() / "data"):
        if (local / "dataset_info.json").is_file():
            return local
    return resource_dir("data")


def resolve_dataset_dir(value: str | Path | None) -> Path:
    """The dataset folder a config means: `data` (the default) falls back to the shipped one when cwd has none."""
    if value is None or str(value) in ("data", "./data"):
        return default_dataset_dir()
    return Path(value)


def demo_model_dir() -> Path:
    """Where `model_name_or_path: demo` is built."""
    return saves_dir() / "models" / "demo"


def vision_demo_dir() -> Path:
    """Where `model_name_or_path: demo-vision` is built."""
    return saves_dir() / "models" / "demo-vision"


def audio_demo_dir() -> Path:
    """Where `model_name_or_path: demo-audio` is built."""
    return saves_dir() / "models" / "demo-audio"


def tokenized_cache_dir() -> Path:
    """Where tokenized datasets are cached (env STUDIO_TOKENIZED_CACHE, default: saves/.cache/tokenized)."""
    override = os.environ.get("STUDIO_TOKENIZED_CACHE")
    return Path(override).expanduser() if override else saves_dir() / ".cache" / "tokenized"
