"""LLaMA-Factory's benchmark folders (MMLU / C-Eval / CMMLU CSV layout) as lm-evaluation-harness task configs.

A folder holds `<subject>_dev.csv` (solved examples for the few-shot prompt) and `<subject>_val.csv` and/or
`<subject>_test.csv` (the questions; in the folder itself or in `dev/`, `val/`, `test/` sub-folders), rows
`question,A,B,C,D,answer` (a header row is optional; C-Eval's `id` and CMMLU's index column are skipped), plus
`mapping.json`: `{"<subject>": {"name": "<display name>", "category": "<category>"}}`.

`group_config` turns such a folder into one lm-eval group (benchmark → category groups → subject tasks, MMLU's
layout), scored by lm-eval's multiple-choice log-likelihood like any of its tasks. The rows are read here, from the
folder, so no network is needed. Torch-free: `datasets` is imported only when lm-eval asks for the rows.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from pathlib import Path
from typing import Any

from engine.errors import DataError

CHOICES = ("A", "B", "C", "D")
MAPPING_FILE = "mapping.json"
# A task's split → the file suffix the published benchmarks use.
SPLIT_SUFFIX = {"test": "test", "val": "val", "validation": "val", "dev": "dev"}
# The instruction opening each prompt and the cue after the options, per prompt language (MMLU's and C-Eval's).
PROMPTS = {
    "en": ("The following are multiple choice questions (with answers) about {subject}.\n\n", "Answer:"),
    "zh": ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n", "答案："),
}


def subject_files(folder: Path, suffix: str) -> dict[str, Path]:
    """subject → its `<subject>_<suffix>.csv` anywhere under `folder`."""
    ending = f"_{suffix}.csv"
    return {p.name[: -len(ending)]: p for p in sorted(folder.rglob(f"*{ending}")) if p.is_file()}


def read_mapping(folder: Path) -> dict[str, dict[str, str]]:
    """The folder's mapping.json (subject → name and category); {} when it has none."""
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


def read_questions(path: Path) -> list[dict[str, str]]:
    """Rows of one CSV file as `{question, A, B, C, D, answer}` (rows without an answer, as in C-Eval's test split,
    are left out)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError("benchmark_file_invalid", path=str(path), line=1,
                        problem=f"not UTF-8 ({err.reason})") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    named = "question" in header and "answer" in header
    questions = []
    for line, row in enumerate(rows[1:] if named else rows, start=2 if named else 1):
        if named:
            record = dict(zip(header, row, strict=False))
        elif len(row) in (6, 7):  # 7: a leading id column
            record = dict(zip(("question", "a", "b", "c", "d", "answer"), row[-6:], strict=True))
        else:
            raise DataError("benchmark_file_invalid", path=str(path), line=line,
                            problem=f"{len(row)} columns (expected question,A,B,C,D,answer)")
        answer = str(record.get("answer") or "").strip().upper()
        if not answer:
            continue
        if answer not in CHOICES:
            raise DataError("benchmark_file_invalid", path=str(path), line=line,
                            problem=f"answer {answer!r} is not one of A-D")
        questions.append({"question": str(record.get("question", "")).strip(), "answer": answer,
                          **{c: str(record.get(c.lower(), "") or "").strip() for c in CHOICES}})
    return questions


def load_rows(dev: Path | None, scored: Path, split: str, **_: Any) -> Any:
    """A subject's `dev` and scored split as a DatasetDict (what lm-eval's `custom_dataset` returns)."""
    import datasets

    splits = {split: read_questions(scored), "dev": read_questions(dev) if dev else []}
    features = datasets.Features({key: datasets.Value("string") for key in ("question", *CHOICES, "answer")})
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows, features=features)
                                 for name, rows in splits.items()})


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_") or "other"


def group_config(folder: Path, name: str, split: str, *, lang: str, n_shot: int) -> dict[str, Any]:
    """The folder's split as an lm-eval group config: `<name>` → `<name>_<category>` → `<name>_<subject>`."""
    suffix = SPLIT_SUFFIX[split]
    files, dev_files, mapping = subject_files(folder, suffix), subject_files(folder, "dev"), read_mapping(folder)
    instruction, cue = PROMPTS[lang]
    categories: dict[str, list[dict[str, Any]]] = {}
    for key in list(mapping) or list(files):
        if key not in files:
            raise DataError("benchmark_subject_missing", subject=key, path=str(folder / f"{key}_{suffix}.csv"))
        if n_shot and key not in dev_files:
            raise DataError("benchmark_no_dev", subject=key, path=str(folder / f"{key}_dev.csv"))
        info = mapping.get(key, {})
        shown = str(info.get("name") or key.replace("_", " "))
        categories.setdefault(str(info.get("category") or "Other"), []).append({
            "task": f"{name}_{key}", "task_alias": shown,
            "custom_dataset": functools.partial(load_rows, dev_files.get(key), files[key], suffix),
            "output_type": "multiple_choice", "test_split": suffix, "fewshot_split": "dev",
            "fewshot_config": {"sampler": "first_n"}, "num_fewshot": n_shot,
            "description": instruction.format(subject=shown),
            "doc_to_text": "{{question}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\n" + cue,
            "doc_to_choice": list(CHOICES), "doc_to_target": "{{['A', 'B', 'C', 'D'].index(answer)}}",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        })
    weighted = [{"metric": "acc", "weight_by_size": True}]
    return {"group": name, "task": [{"group": f"{name}_{_slug(category)}", "group_alias": category, "task": tasks,
                                     "aggregate_metric_list": weighted} for category, tasks in categories.items()],
            "aggregate_metric_list": weighted, "metadata": {"version": 1.0}}
