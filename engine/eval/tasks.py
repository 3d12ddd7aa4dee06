"""Which lm-evaluation-harness tasks a `task` setting means, checked before any model is loaded.

`task` takes LLaMA-Factory's names and lm-eval's alike (several, comma-separated):
- `<folder>_<split>` where `task_dir` (default ./evaluation, then the shipped one) has that folder: a folder that
  holds `<folder>.yaml` is an lm-eval task folder (our `studio_bench`, scored from files beside it, offline);
  a folder of CSV files in LLaMA-Factory's layout becomes an lm-eval group built from them (`engine.eval.csv_tasks`);
- `mmlu_test`, `ceval_validation`, `cmmlu_test`: lm-eval's `mmlu`, `ceval-valid`, `cmmlu` (data from the hub);
- any other name: an lm-eval task, group or tag (`hellaswag`, `arc_easy`, `mmlu_abstract_algebra`), looked up in
  lm-eval's index together with the YAML files under `task_dir`; an unknown one is refused with the closest names.

Torch-free: lm-eval's task index is YAML files only, so the pre-launch check can use it.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.evaluation import TASK_SPLITS
from engine.errors import ConfigError, DataError
from engine.eval.csv_tasks import SPLIT_SUFFIX, group_config, subject_files
from engine.paths import resource_dir

DEFAULT_TASK_DIR = "evaluation"
OFFLINE_TASK = "studio_bench_test"
INSTALL_HINT = 'pip install "llm-studio[eval]"'
# LLaMA-Factory's benchmark names → lm-eval's task for each split whose answers are public.
HUB_TASKS: dict[str, dict[str, str]] = {
    "mmlu": {"test": "mmlu"},
    "ceval": {"validation": "ceval-valid", "val": "ceval-valid"},
    "cmmlu": {"test": "cmmlu"},
}


@dataclass
class TaskPlan:
    """What lm-eval is asked to score: task names or inline configs, the folders its index also reads, and which
    of the names take their data from the hub."""

    task: str
    specs: list[Any] = field(default_factory=list)
    include_path: list[str] = field(default_factory=list)
    hub: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The lm-eval names scored, as results.json lists them."""
        return [spec["group"] if isinstance(spec, dict) else spec for spec in self.specs]


def require_lm_eval() -> None:
    """Raise a ConfigError naming the install command when lm-evaluation-harness is missing."""
    if importlib.util.find_spec("lm_eval") is None:
        raise ConfigError("lm_eval_missing", install=INSTALL_HINT)


def task_dirs(task_dir: str | Path | None) -> list[Path]:
    """Folders searched for benchmarks: `evaluation` (the default) means ./evaluation, then the shipped one."""
    if task_dir is None or str(task_dir).rstrip("/") in (DEFAULT_TASK_DIR, f"./{DEFAULT_TASK_DIR}"):
        return [Path.cwd() / DEFAULT_TASK_DIR, resource_dir(DEFAULT_TASK_DIR)]
    return [Path(task_dir).expanduser()]


def list_tasks(task_dir: str | Path | None = None) -> list[str]:
    """Offered task names: local folders (`<folder>_test`, `<folder>_validation`), then MMLU / C-Eval / CMMLU."""
    found: list[str] = []
    for base in task_dirs(task_dir):
        for folder in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            found += [f"{folder.name}_{split}" for split in ("test", "validation")
                      if subject_files(folder, SPLIT_SUFFIX[split]) and f"{folder.name}_{split}" not in found]
    hub = [f"{name}_{split}" for name, splits in HUB_TASKS.items() for split in splits if split != "val"]
    return found + [t for t in hub if t not in found]


@functools.cache
def task_manager(include_path: tuple[str, ...]) -> Any:
    """lm-eval's index of every task, group and tag, plus the YAML files under `include_path` (built once: it reads
    thousands of files)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(include_path) or None)


def resolve_tasks(task: str, task_dir: str | Path | None = None, *, lang: str = "en", n_shot: int = 5) -> TaskPlan:
    """The plan for `task` (see the module doc), in the order written; raises a clear error for a name nothing
    knows."""
    names = [n.strip() for n in task.split(",") if n.strip()]
    if not names:
        raise ConfigError("eval_no_task", known=", ".join(list_tasks(task_dir)))
    require_lm_eval()
    plan = TaskPlan(task)
    specs = {name: _benchmark_spec(plan, name, task_dir, lang, n_shot) for name in names}
    others = [name for name, spec in specs.items() if spec is None]
    if others:
        yaml_dirs = [d for d in task_dirs(task_dir) if d.is_dir() and any(d.rglob("*.yaml"))]
        plan.include_path = outermost([*plan.include_path, *map(str, yaml_dirs)])
        manager = task_manager(tuple(plan.include_path))
        for name in others:
            if name not in manager.all_tasks:
                close = difflib.get_close_matches(name, manager.all_tasks, n=6, cutoff=0.6)
                raise ConfigError("eval_task_unknown", task=name, close=", ".join(close) or "-",
                                  offline=OFFLINE_TASK, examples=", ".join(list_tasks(task_dir)))
            specs[name] = name
            if not _is_local(manager, name, plan.include_path):
                plan.hub.append(name)
    plan.specs = list(specs.values())
    return plan


def outermost(paths: list[str]) -> list[str]:
    """The folders, once each, without those inside another (lm-eval would index their files twice)."""
    resolved = list(dict.fromkeys(str(Path(p).resolve()) for p in paths))
    return [p for p in resolved if not any(o != p and Path(p).is_relative_to(o) for o in resolved)]


def _benchmark_spec(plan: TaskPlan, name: str, task_dir: str | Path | None, lang: str, n_shot: int) -> Any:
    """The lm-eval spec of a LLaMA-Factory-style `<benchmark>_<split>` (noting its folder or hub use in the plan);
    None when `name` is not one."""
    base, sep, split = name.rpartition("_")
    if not sep or split not in TASK_SPLITS:
        return None
    folder = task_folder(task_dir, base)
    folder = folder if folder.is_dir() else None
    if folder is not None and (folder / f"{base}.yaml").is_file() and split == "test":
        plan.include_path.append(str(folder))
        return base
    if folder is not None and subject_files(folder, SPLIT_SUFFIX[split]):
        return group_config(folder, base, split, lang=lang, n_shot=n_shot)
    if base in HUB_TASKS:
        if split not in HUB_TASKS[base]:
            raise ConfigError("eval_split_unavailable", task=name,
                              splits=", ".join(f"{base}_{s}" for s in HUB_TASKS[base] if s != "val"))
        plan.hub.append(HUB_TASKS[base][split])
        return HUB_TASKS[base][split]
    if folder is not None:
        raise DataError("benchmark_not_found", task=name, folder=str(folder), suffix=SPLIT_SUFFIX[split],
                        hub=", ".join(HUB_TASKS))
    return None


def _is_local(manager: Any, name: str, include_path: list[str]) -> bool:
    """Whether lm-eval's entry for `name` comes from one of our folders (its data then lies beside it)."""
    entry = manager.task_index.get(name)
    path = getattr(entry, "yaml_path", None)
    return bool(path) and any(Path(path).resolve().is_relative_to(Path(p).resolve()) for p in include_path)


def parse_task(task: str) -> tuple[str, str]:
    """`mmlu_test` → (`mmlu`, `test`); the split is the part after the last underscore."""
    name, sep, split = task.strip().rpartition("_")
    if not sep or not name or split not in TASK_SPLITS:
        raise ConfigError("eval_task_format", task=task, splits=", ".join(TASK_SPLITS))
    return name, split


def task_folder(task_dir: str | Path | None, name: str) -> Path:
    """The folder of benchmark `name` (the first that exists; else where the user should put it)."""
    candidates = [base / name for base in task_dirs(task_dir)]
    return next((c for c in candidates if c.is_dir()), candidates[0])
