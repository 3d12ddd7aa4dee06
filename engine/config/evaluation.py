"""Multiple-choice benchmarks (MMLU, C-Eval, CMMLU and our own): which task, how many shots, where results go."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option

# Splits a task name may end with (`mmlu_test`, `ceval_validation`, `studio_bench_dev`).
TASK_SPLITS = ["test", "val", "validation", "dev"]
EVAL_LANGS = ["en", "zh"]


@dataclass
class EvaluationArguments:
    """Benchmark settings (LLaMA-Factory's names); predictions use the data, generation and training keys."""

    task: str | None = option(None, "Benchmark and split, e.g. mmlu_test, ceval_validation, cmmlu_test, "
                                    "studio_bench_test.")
    task_dir: str = option("evaluation", "Folder holding one sub-folder per benchmark (default: ./evaluation, "
                                         "then the shipped one).")
    n_shot: int = option(5, "Solved examples from the dev split shown before each question.", min=0, max=32)
    lang: str = option("en", "Language of the benchmark prompt.", choices=EVAL_LANGS)
    save_dir: str | None = option(None, "Where benchmark results go (used when output_dir is not set).")
    batch_size: int | None = option(None, "Questions scored per forward pass (default: per_device_eval_batch_size).",
                                    min=1, max=1024)
    download_mode: str = option("reuse_dataset_if_exists", "Whether a hub benchmark is downloaded again.",
                                choices=["reuse_dataset_if_exists", "reuse_cache_if_exists", "force_redownload"])
    compare_with: str | None = option(None, "Score a second model in the same table: `base` (the model without "
                                            "adapter_name_or_path) or another adapter folder.")
