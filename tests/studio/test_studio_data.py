"""The studio's own datasets live under STUDIO_HOME/data: uploads, the registry and its backup go there, the
shipped data folder is never written, and the engine (run from STUDIO_HOME) reads the same registry."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

import engine.paths
from engine.data import get_dataset_attrs
from engine.paths import default_dataset_dir, resolve_dataset_dir
from studio import workspace
from studio.datasets import list_datasets, register_upload

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def digest(folder: Path) -> str:
    """One hash of every file's name and bytes under `folder`."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A read-only copy of the shipped data folder standing in for the installed package's."""
    root = tmp_path / "package"
    shutil.copytree(SOURCE_ROOT / "data", root / "data")
    for name in ("locales", "examples"):
        (root / name).symlink_to(SOURCE_ROOT / name)
    for path in [root / "data", *(root / "data").rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    monkeypatch.setattr(engine.paths, "_SOURCE_ROOT", root)
    yield root / "data"
    for path in [root / "data", *(root / "data").rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def upload_file(tmp_path: Path) -> Path:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps([{"instruction": "hi", "output": "hello"}]), encoding="utf-8")
    return path


def test_uploads_go_to_studio_home_and_the_shipped_folder_stays_as_it_was(studio_home, shipped, tmp_path,
                                                                          monkeypatch):
    from studio.config_builder import build_train_config
    from tests.studio.test_config_builder import form

    before = digest(shipped)
    monkeypatch.chdir(tmp_path)  # the studio's own working directory is not STUDIO_HOME
    folder = workspace.dataset_dir("data")
    assert Path(folder) == studio_home / "data"
    register_upload(upload_file(tmp_path), folder, "mine", "alpaca", {})
    assert (studio_home / "data" / "uploads" / "mine.json").is_file()
    assert (studio_home / "data" / "dataset_info.json.bak").is_file()
    assert {"mine", "identity", "alpaca_en_demo"} <= set(list_datasets(workspace.dataset_dir("data"), "sft"))
    config, _ = build_train_config(form(dataset=["mine"]))
    assert config["dataset_dir"] == str(studio_home / "data")
    monkeypatch.chdir(studio_home)  # where the engine runs: its default folder is the same registry
    assert default_dataset_dir() == studio_home / "data"
    (attr,) = get_dataset_attrs(["mine"], resolve_dataset_dir("data"))
    assert attr.path_or_id == "uploads/mine.json"
    assert digest(shipped) == before


def test_the_studio_registry_lists_the_shipped_datasets(studio_home, shipped, tmp_path):
    folder = Path(workspace.dataset_dir(None))
    register_upload(upload_file(tmp_path), folder, "mine", "alpaca", {})
    registry = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    shipped_registry = json.loads((shipped / "dataset_info.json").read_text(encoding="utf-8"))
    assert set(shipped_registry) | {"mine"} == set(registry)  # hub datasets too, outside the demo
    assert "identity" in list_datasets(folder, "sft")
    assert (folder / "identity.json").resolve() == (shipped / "identity.json").resolve()  # linked, not copied

def test_an_existing_users_data_folder_keeps_working(studio_home, shipped, tmp_path):
    own = studio_home / "data"
    own.mkdir()
    (own / "dataset_info.json").write_text(json.dumps({"own_set": {"file_name": "own.json"}}), encoding="utf-8")
    (own / "own.json").write_text(json.dumps([{"instruction": "a", "output": "b"}]), encoding="utf-8")
    folder = workspace.dataset_dir("data")
    assert Path(folder) == own
    assert "own_set" in list_datasets(folder, "sft")
    assert workspace.dataset_dir(str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere")  # typed: as typed


def test_register_upload_never_writes_into_the_shipped_folder(studio_home, shipped, tmp_path):
    before = digest(shipped)
    register_upload(upload_file(tmp_path), None, "mine", "alpaca", {})
    assert (studio_home / "data" / "uploads" / "mine.json").is_file()
    assert digest(shipped) == before
    assert os.access(shipped, os.R_OK)
