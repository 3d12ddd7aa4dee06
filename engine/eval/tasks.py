"""Multiple-choice benchmarks as data: find a task (a local folder or the hub), read its subjects and questions.

The layout is the one MMLU, C-Eval and CMMLU publish: one folder per benchmark holding `<subject>_dev.csv`
(solved examples for the few-shot prompt), `<subject>_val.csv` and/or `<subject>_test.csv` (the questions, in
the folder itself or in `dev/`, `val/`, `test/` sub-folders), with rows `question,A,B,C,D,answer` (a header row
is optional; C-Eval's `id` and CMMLU's index column are skipped), plus `mapping.json`:
`{"<subject>": {"name": "<display name>", "category": "<category>"}}`.

Torch-free: `datasets` is imported only when a task is read from the hub.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.evaluation import TASK_SPLITS
from engine.errors import ConfigError, DataError
from engine.paths import resource_dir

logger = logging.getLogger(__name__)

CHOICES = ("A", "B", "C", "D")
MAPPING_FILE = "mapping.json"
DEFAULT_TASK_DIR = "evaluation"
# A task's split → the file suffix the published benchmarks use.
SPLIT_SUFFIX = {"test": "test", "val": "val", "validation": "val", "dev": "dev"}


@dataclass(frozen=True)
class HubTask:
    """Where a published benchmark lives on the Hugging Face hub, and its split names there."""

    repo: str
    splits: dict[str, str]
    revision: str | None = None
    scored: tuple[str, ...] = ("test", "validation")  # the task names offered: splits whose answers are public


HUB_TASKS: dict[str, HubTask] = {
    "mmlu": HubTask("cais/mmlu", {"test": "test", "val": "validation", "dev": "dev"}),
    "ceval": HubTask("ceval/ceval-exam", {"test": "test", "val": "val", "dev": "dev"}, scored=("validation",)),
    # CMMLU's own repository is a loading script, which `datasets` no longer runs: read the hub's parquet copy.
    "cmmlu": HubTask("haonan-li/cmmlu", {"test": "test", "dev": "dev"}, revision="refs/convert/parquet",
                     scored=("test",)),
}


@dataclass
class Question:
    """One multiple-choice question: its text, the four options (A-D) and the correct letter."""

    question: str
    choices: list[str]
    answer: str


@dataclass
class Subject:
    """One subject of a benchmark: its solved examples (`dev`) and the questions scored (`questions`)."""

    key: str
    name: str
    category: str
    dev: list[Question] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)


@dataclass
class Task:
    """A benchmark split ready to score: `studio_bench_test` → name `studio_bench`, split `test`."""

    task: str
    name: str
    split: str
    source: str
    subjects: list[Subject]

    @property
    def num_questions(self) -> int:
        """Questions over all subjects."""
        return sum(len(s.questions) for s in self.subjects)


def parse_task(task: str) -> tuple[str, str]:
    """`mmlu_test` → (`mmlu`, `test`); the split is the part after the last underscore."""
    name, sep, split = task.strip().rpartition("_")
    if not sep or not name or split not in TASK_SPLITS:
        raise ConfigError("eval_task_format", task=task, splits=", ".join(TASK_SPLITS))
    return name, split


def task_dirs(task_dir: str | Path | None) -> list[Path]:
    """Folders searched for benchmarks: `evaluation` (the default) means ./evaluation, then the shipped one."""
    if task_dir is None or str(task_dir).rstrip("/") in (DEFAULT_TASK_DIR, f"./{DEFAULT_TASK_DIR}"):
        return [Path.cwd() / DEFAULT_TASK_DIR, resource_dir(DEFAULT_TASK_DIR)]
    return [Path(task_dir).expanduser()]


def task_folder(task_dir: str | Path | None, name: str) -> Path:
    """The folder of benchmark `name` (the first that exists; else where the user should put it)."""
    candidates = [base / name for base in task_dirs(task_dir)]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _subject_files(folder: Path, suffix: str) -> dict[str, Path]:
    """subject → its `<subject>_<suffix>.csv` anywhere under `folder`."""
    ending = f"_{suffix}.csv"
    return {p.name[: -len(ending)]: p for p in sorted(folder.rglob(f"*{ending}")) if p.is_file()}


def list_tasks(task_dir: str | Path | None = None) -> list[str]:
    """Task names that can be scored from local folders (`<folder>_test`, `<folder>_validation`), then the hub's."""
    found: list[str] = []
    for base in task_dirs(task_dir):
        folders = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        for folder in folders:
            found += [f"{folder.name}_{split}" for split in ("test", "validation")
                      if _subject_files(folder, SPLIT_SUFFIX[split]) and f"{folder.name}_{split}" not in found]
    hub = [f"{name}_{split}" for name, info in HUB_TASKS.items() for split in info.scored]
    return found + [t for t in hub if t not in found]


def check_task_exists(task: str, task_dir: str | Path | None = None) -> None:
    """Raise the DataError `load_task` would for a task that is neither a local folder nor a hub benchmark."""
    name, split = parse_task(task)
    folder = task_folder(task_dir, name)
    if folder.is_dir() and _subject_files(folder, SPLIT_SUFFIX[split]):
        return
    if name not in HUB_TASKS:
        raise DataError("benchmark_not_found", task=task, folder=str(folder), suffix=SPLIT_SUFFIX[split],
                        hub=", ".join(HUB_TASKS))
    if SPLIT_SUFFIX[split] not in HUB_TASKS[name].splits:
        raise ConfigError("eval_split_unavailable", task=task,
                          splits=", ".join(f"{name}_{s}" for s in HUB_TASKS[name].scored))


def read_mapping(folder: Path) -> dict[str, dict[str, str]]:
    """The task's mapping.json (subject → name and category); {} when the folder has none."""
    path = folder / MAPPING_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError("benchmark_mapping_invalid", path=str(path), problem=str(err)) from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise DataError("benchmark_mapping_invalid", path=str(path),
                        problem='expected {"subject": {"name": ..., "category": ...}}')
    return data


def question_from_row(row: dict[str, Any]) -> Question | None:
    """A Question from a hub row or a named CSV row (None when it has no answer, like C-Eval's test split)."""
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    if isinstance(lower.get("choices"), (list, tuple)):
        choices = [str(c) for c in lower["choices"]]
    else:
        choices = [str(lower.get(letter.lower(), "") or "") for letter in CHOICES]
    answer = lower.get("answer")
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(CHOICES):
        answer = CHOICES[answer]
    answer = str(answer or "").strip().upper()
    if not answer:
        return None
    if answer not in CHOICES or len(choices) != len(CHOICES):
        raise ValueError(f"answer {answer!r} with {len(choices)} options (need 4 options and A-D)")
    return Question(str(lower.get("question", "")).strip(), choices, answer)


def read_questions(path: Path) -> list[Question]:
    """Questions of one CSV file: `question,A,B,C,D,answer`, with or without a header row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError("benchmark_file_invalid", path=str(path), line=1, problem=f"not UTF-8 ({err.reason})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    named = "question" in header and "answer" in header
    questions = []
    for line, row in enumerate(rows[1:] if named else rows, start=2 if named else 1):
        try:
            if named:
                record = dict(zip(header, row, strict=False))
            elif len(row) in (6, 7):  # 7: a leading id column
                record = dict(zip(("question", "a", "b", "c", "d", "answer"), row[-6:], strict=True))
            else:
                raise ValueError(f"{len(row)} columns (expected question,A,B,C,D,answer)")
            question = question_from_row(record)
        except ValueError as err:
            raise DataError("benchmark_file_invalid", path=str(path), line=line, problem=str(err)) from None
        if question is not None:
            questions.append(question)
    return questions


def load_task(task: str, task_dir: str | Path | None = None, *, n_shot: int = 5,
              download_mode: str | None = None) -> Task:
    """The subjects and questions of `task`: from `task_dir/<name>/` when it has the split's files, else the hub
    (`download_mode`: `datasets`' choice of reusing or downloading again)."""
    check_task_exists(task, task_dir)
    name, split = parse_task(task)
    folder = task_folder(task_dir, name)
    if folder.is_dir() and _subject_files(folder, SPLIT_SUFFIX[split]):
        subjects = _load_local(folder, split, n_shot)
        source = str(folder)
    else:
        mapping = read_mapping(folder) if folder.is_dir() else {}
        subjects = _load_hub(task, name, split, n_shot, mapping, folder, download_mode)
        source = HUB_TASKS[name].repo
    result = Task(task, name, split, source, subjects)
    if not result.num_questions:
        raise DataError("benchmark_no_answers", task=task, source=source)
    return result


def _load_local(folder: Path, split: str, n_shot: int) -> list[Subject]:
    mapping = read_mapping(folder)
    files = _subject_files(folder, SPLIT_SUFFIX[split])
    dev_files = _subject_files(folder, "dev")
    keys = list(mapping) or list(files)
    subjects = []
    for key in keys:
        if key not in files:
            raise DataError("benchmark_subject_missing", subject=key, path=str(folder / f"{key}_{SPLIT_SUFFIX[split]}.csv"))
        if n_shot and key not in dev_files:
            raise DataError("benchmark_no_dev", subject=key, path=str(folder / f"{key}_dev.csv"))
        info = mapping.get(key, {})
        subjects.append(Subject(key, str(info.get("name") or key.replace("_", " ")), str(info.get("category") or "Other"),
                                read_questions(dev_files[key])[:n_shot] if n_shot else [],
                                read_questions(files[key])))
    return subjects


def _load_hub(task: str, name: str, split: str, n_shot: int, mapping: dict, folder: Path,
              download_mode: str | None = None) -> list[Subject]:
    """Each subject's dev and eval split from the hub, with errors that name the task and the local folder."""
    info = HUB_TASKS[name]
    where = {"task": task, "hub_id": info.repo, "folder": str(folder)}
    try:
        import datasets

        keys = list(mapping) or [c for c in datasets.get_dataset_config_names(info.repo, revision=info.revision)
                                 if c not in ("all", "auxiliary_train", "default")]
        subjects = []
        for key in keys:
            logger.info("Loading %s / %s from the hub.", info.repo, key)
            rows = datasets.load_dataset(info.repo, key, revision=info.revision, download_mode=download_mode)
            meta = mapping.get(key, {})
            dev = [q for q in map(question_from_row, rows[info.splits["dev"]]) if q][:n_shot] if n_shot else []
            questions = [q for q in map(question_from_row, rows[info.splits[SPLIT_SUFFIX[split]]]) if q]
            subjects.append(Subject(key, str(meta.get("name") or key.replace("_", " ")),
                                    str(meta.get("category") or name), dev, questions))
    except DataError:
        raise
    except Exception as err:  # every hub failure becomes one message naming the task and the local way out
        raise _hub_error(err, where) from err
    return subjects


def _hub_error(err: Exception, where: dict[str, str]) -> DataError:
    reason = f"{type(err).__name__}: {err}"[:300]
    offline = [k for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
               if os.environ.get(k, "").lower() in ("1", "true", "yes", "on")]
    network = isinstance(err, (ConnectionError, TimeoutError)) or "OfflineModeIsEnabled" in reason
    if network and offline:
        return DataError("benchmark_offline", variables=", ".join(offline), reason=reason, **where)
    if network:
        return DataError("benchmark_unreachable", reason=reason, **where)
    return DataError("benchmark_hub_failed", reason=reason, **where)
