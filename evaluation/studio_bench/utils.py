"""Rows of studio_bench for lm-evaluation-harness: the CSV files beside this file, read without the network.

The task YAMLs name `load_subject` as their `custom_dataset`, so the benchmark works from any working directory
(a `data_files` path in YAML would be read relative to where lm-eval runs, not to this folder).
"""

import csv
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def read_rows(path: Path) -> list[dict[str, str]]:
    """One dict per question: question, A, B, C, D and the answer letter."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [{key: (value or "").strip() for key, value in row.items()} for row in csv.DictReader(f)]


def load_subject(subject: str, **_: object):
    """The subject's `dev` (few-shot examples) and `test` (scored questions) splits as a DatasetDict."""
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_list(read_rows(FOLDER / f"{subject}_{split}.csv"))
                                 for split in ("dev", "test")})
