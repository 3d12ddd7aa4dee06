"""The runs list: where the studio puts runs, which runs exist, and resuming, deleting and comparing them."""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from engine.errors import StudioError, format_message
from engine.plotting import loss_points
from engine.runfolder import (
    CONFIG_FILE,
    STATUS_FILE,
    TRAINER_LOG,
    is_locked,
    list_checkpoints,
    read_status,
    read_trainer_log,
    tail_text,
)
from studio.monitor import empty_frame, job_kind
from studio.queue import list_queue, position_and_expected_start
from studio.workspace import saves_dir

MODELS_DIR = "models"  # saves/models/ holds built models (the demo), not runs
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json")
TABLE_COLUMNS = ("name", "kind", "model", "method", "stage", "state", "started", "steps", "final_loss", "checkpoints")
# Characters no folder name may hold on some system the saves folder may be copied to; control characters too.
_ILLEGAL = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
# Names Windows keeps for devices, with or without an extension.
_DEVICES = re.compile(r"(?i)^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$")
MAX_NAME_BYTES = 200  # file systems allow 255 bytes; a download adds `.zip`, a settings file `.yaml`


def folder_name(text: str) -> str:
    """A name typed by a person as a folder name: kept as typed, in any alphabet (trimmed, Unicode NFC), so two
    different names are always two folders. A name that cannot be a folder is refused, never rewritten (a rewrite
    would make different names collide): path separators, `..`, a leading `.`, control characters, the characters
    some systems forbid, device names, over-long names, and `checkpoint-…` (the name of a run's own checkpoints).
    """
    name = unicodedata.normalize("NFC", str(text)).strip()
    if (not name or name.startswith(".") or ".." in name or name.endswith(".") or _ILLEGAL.search(name)
            or _DEVICES.match(name) or name.startswith("checkpoint-") or len(name.encode()) > MAX_NAME_BYTES):
        raise StudioError("bad_run_name", name=str(text))
    return name


def run_model_key(model_name: str, model_path_value: str) -> str:
    """The folder under saves/ for a model: the last part of its path (`demo`, `Qwen2.5-7B-Instruct`), as the CLI
    names its default output folders too."""
    return (model_path_value or model_name or "custom").rstrip("/").split("/")[-1] or "custom"


def run_folder(model_name: str, finetuning_type: str, run_name: str, saves: Path | None = None) -> Path:
    """`saves/<model>/<method>/<run>/`, each part a `folder_name`; the model part is the last part of a hub id or
    path. The one place the studio names a run's folder (training, evaluation and export alike)."""
    model = Path(str(model_name).strip().rstrip("/\\")).name or str(model_name)
    return Path(saves or saves_dir()) / folder_name(model) / folder_name(finetuning_type) / folder_name(run_name)


def default_run_name(prefix: str = "train") -> str:
    """`train_YYYY-MM-DD-HH-MM-SS`, the name a new run gets unless the user types one."""
    return f"{prefix}_{datetime.now():%Y-%m-%d-%H-%M-%S}"


def _run_dirs(saves: Path) -> list[Path]:
    """Folders under `saves` that hold a config.yaml or a status.json (not built models, not checkpoints)."""
    found = []
    for root, dirs, files in os.walk(saves):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith((".", "checkpoint-"))
                   and not (here == saves and d == MODELS_DIR)]
        if here != saves and (CONFIG_FILE in files or STATUS_FILE in files):
            found.append(here)
    return found


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _last_records(run_dir: Path) -> list[dict[str, Any]]:
    """The last trainer_log lines (only the file's end is read, however long the run)."""
    records = []
    for line in tail_text(run_dir / TRAINER_LOG, max_lines=200, max_bytes=65536).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the first line of the tail may be cut
        if isinstance(record, dict):
            records.append(record)
    return records


def _started(status: dict[str, Any], run_dir: Path) -> tuple[str | None, float]:
    """(started_at as written, a sortable timestamp); folders without a status sort by their config's time."""
    started = status.get("started_at")
    try:
        return started, datetime.fromisoformat(started).timestamp()
    except (TypeError, ValueError):
        pass
    try:
        mtime = (run_dir / CONFIG_FILE).stat().st_mtime
    except OSError:
        mtime = run_dir.stat().st_mtime
    return started, mtime


def describe_run(run_dir: Path, saves: Path) -> dict[str, Any]:
    """One entry of the runs list, read from the run folder's files: the one place a folder becomes a run (its
    job `kind` included), for every list and picker of runs."""
    config = _read_config(run_dir)
    status = read_status(run_dir)
    parts = run_dir.relative_to(saves).parts
    records = _last_records(run_dir)
    stepped = [r for r in records if isinstance(r.get("current_steps"), int)]
    losses = loss_points(records)[1]
    started, sort_time = _started(status, run_dir)
    model_path = str(config.get("model_name_or_path") or "")
    return {
        "path": str(run_dir),
        "model": parts[0] if len(parts) >= 3 else Path(model_path.rstrip("/")).name,
        "method": parts[1] if len(parts) >= 3 else str(config.get("finetuning_type") or ""),
        "name": run_dir.name,
        "kind": job_kind(run_dir, status),
        "stage": str(config.get("stage") or ""),
        "state": status.get("state", "unknown"),
        "started_at": started,
        "current_steps": stepped[-1]["current_steps"] if stepped else 0,
        "total_steps": stepped[-1].get("total_steps", 0) if stepped else 0,
        "final_loss": losses[-1] if losses else None,
        "checkpoints": [p.name for p in list_checkpoints(run_dir)],
        "_sort": sort_time,
    }


def list_runs(saves: Path | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every run under the saves folder (only jobs of `kind` when given), newest first (`describe_run`'s keys)."""
    saves = Path(saves or saves_dir()).resolve()
    if not saves.is_dir():
        return []
    runs = [describe_run(run_dir, saves) for run_dir in _run_dirs(saves)]
    runs = [run for run in runs if kind is None or run["kind"] == kind]
    runs.sort(key=lambda run: (run["_sort"], run["path"]), reverse=True)
    queued = {entry["run_dir"]: entry for entry in list_queue()}
    for run in runs:
        del run["_sort"]
        entry = queued.get(run["path"])
        if entry is not None and run["state"] == "new":  # waiting in the queue: its place and expected start
            run["kind"] = entry["kind"]
            run["state"] = "queued"
            run["queue_position"], run["expected_start"] = position_and_expected_start(entry)
    return runs


def runs_table(runs: list[dict[str, Any]], lang: str = "en") -> pd.DataFrame:
    """The runs list as a table for gr.Dataframe: localized headers and states; row i is runs[i]."""
    rows = []
    for run in runs:
        started = run.get("started_at") or ""
        loss = run.get("final_loss")
        rows.append([
            run["name"], format_message(f"runs.kind.{run['kind']}", lang), run["model"], run["method"], run["stage"],
            format_message(f"monitor.state.{run['state']}", lang),
            _queued_start(run, lang) if run["state"] == "queued" else started[:16].replace("T", " "),
            f"{run['current_steps']}/{run['total_steps']}" if run.get("total_steps") else "",
            round(loss, 4) if loss is not None else None,
            len(run["checkpoints"]),
        ])
    headers = [format_message(f"runs.column.{column}", lang) for column in TABLE_COLUMNS]
    return pd.DataFrame(rows, columns=headers)


def _queued_start(run: dict[str, Any], lang: str) -> str:
    """The started column of a queued run: its place in the queue, and when it should start if that is known."""
    expected = run.get("expected_start")
    when = datetime.fromtimestamp(expected).strftime("%H:%M") if expected else "?"
    return format_message("queue.column.waiting", lang, position=run["queue_position"], time=when)


def resume_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's config.yaml as a flat dict set to continue from its latest checkpoint in the same folder."""
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    if not config:
        raise StudioError("not_a_run", path=str(run_dir))
    if not list_checkpoints(run_dir):
        raise StudioError("nothing_to_resume", path=str(run_dir))
    return {**config, "output_dir": str(run_dir), "resume_from_checkpoint": True, "overwrite_output_dir": False}


def delete_run(run_dir: str | Path, saves: Path | None = None) -> None:
    """Remove a finished, failed or aborted run folder (refuses live runs and anything outside the saves folder)."""
    saves = Path(saves or saves_dir()).resolve()
    given = Path(run_dir)
    target = given.resolve()
    inside = target != saves and target.is_relative_to(saves) and ".." not in given.parts
    if not inside or target.is_relative_to(saves / MODELS_DIR):
        raise StudioError("run_outside_saves", path=str(run_dir), saves=str(saves))
    if not target.is_dir() or not ((target / CONFIG_FILE).exists() or (target / STATUS_FILE).exists()):
        raise StudioError("not_a_run", path=str(run_dir))
    if read_status(target).get("state") == "running" or is_locked(target):
        raise StudioError("run_is_live", path=str(run_dir))
    shutil.rmtree(target)
    # Leave no empty <model>/<method> folders behind.
    parent = target.parent
    while parent != saves and parent.is_relative_to(saves) and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def overlay_losses(run_dirs: list[str | Path]) -> pd.DataFrame:
    """The training loss of several runs as (step, value, series = run name) rows, to compare them in one chart."""
    dirs = [Path(d) for d in run_dirs]
    names = [d.name for d in dirs]
    frames = []
    for run_dir, name in zip(dirs, names, strict=True):
        label = name if names.count(name) == 1 else "/".join(run_dir.parts[-3:])
        steps, values = loss_points(read_trainer_log(run_dir)[0])
        if steps:
            frames.append(pd.DataFrame({"step": steps, "value": values, "series": [label] * len(steps)}))
    return pd.concat(frames, ignore_index=True) if frames else empty_frame()


def list_adapters(model_name: str, finetuning_type: str, saves: Path | None = None) -> list[str]:
    """Names of the training runs under saves/<model>/<method>/ that hold final weights, newest first (an export
    holds weights too, but it is not a run to continue)."""
    method_dir = run_folder(model_name, finetuning_type, "x", saves).parent
    if not method_dir.is_dir():
        return []
    found = []
    for run_dir in method_dir.iterdir():
        weights = [run_dir / name for name in WEIGHT_FILES if (run_dir / name).is_file()]
        if run_dir.is_dir() and weights and job_kind(run_dir) == "train":
            found.append((max(w.stat().st_mtime for w in weights), run_dir.name))
    return [name for _, name in sorted(found, key=lambda item: (-item[0], item[1]))]


def reward_model_runs(saves: Path | None = None, runs: list[dict[str, Any]] | None = None) -> list[str]:
    """Finished reward-model (`stage: rm`) training runs, for the PPO / GRPO reward-model picker (from `runs`, a
    `list_runs` answer, when the caller has one)."""
    runs = list_runs(saves) if runs is None else runs
    return [run["path"] for run in runs if run["kind"] == "train" and run["stage"] == "rm" and run["state"] == "finished"]


# What a downloaded run holds: its weights (adapter or full model), tokenizer, template and records; not the
# checkpoints (the final weights are the result) and not pickled training state.
_DOWNLOAD_SKIP_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".lock", ".tmp")


def pack_run(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Zip a finished run's final files into `out_dir/<run>.zip` and return the zip's path.

    Refuses runs without final weights (a running, failed or aborted run has only checkpoints, if anything).
    """
    import zipfile

    run_dir = Path(run_dir)
    if not any((run_dir / name).is_file() for name in WEIGHT_FILES):
        raise StudioError("download_no_weights", path=str(run_dir))
    out = Path(out_dir) / f"{folder_name(run_dir.name)}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(run_dir.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix not in _DOWNLOAD_SKIP_SUFFIXES:
                archive.write(path, f"{run_dir.name}/{path.name}")
    return out


DOWNLOAD_PREFIX = "studio-download-"
DOWNLOAD_MAX_AGE_S = 600.0  # Gradio copies a download into its own cache at once; ours is not needed after that


def new_download_dir(temp_root: str | Path | None = None, now: float | None = None) -> Path:
    """A fresh folder for one download's zip, after deleting this user's download folders older than
    DOWNLOAD_MAX_AGE_S (each would otherwise stay in the temporary folder for good)."""
    import tempfile
    import time

    root = Path(temp_root or tempfile.gettempdir())
    cutoff = (time.time() if now is None else now) - DOWNLOAD_MAX_AGE_S
    for old in root.glob(f"{DOWNLOAD_PREFIX}*"):
        try:
            info = old.lstat()
        except OSError:
            continue
        # Only our own real folders: another user's, or a link someone placed, is left alone.
        if old.is_dir() and not old.is_symlink() and info.st_uid == os.getuid() and info.st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=DOWNLOAD_PREFIX, dir=root))
