"""Benchmarks through lm-evaluation-harness (MMLU, C-Eval, CMMLU, our own, any lm-eval task): which task, how many
shots and questions, where results go."""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option

# Splits a task name may end with (`mmlu_test`, `ceval_validation`, `studio_bench_dev`).
TASK_SPLITS = ["test", "val", "validation", "dev"]
EVAL_LANGS = ["en", "zh"]


@dataclass
class EvaluationArguments:
    """Benchmark settings (LLaMA-Factory's names); predictions use the data, generation and training keys."""

    task: str | None = option(None, "Benchmark: mmlu_test, ceval_validation, cmmlu_test, studio_bench_test "
                                    "(offline), or any lm-eval task or group name (comma-separated for several).")
    task_dir: str = option("evaluation", "Folder of benchmark folders (CSV files, or lm-eval task YAMLs) "
                                         "(default: ./evaluation, then the shipped one).")
    n_shot: int = option(5, "Solved examples from the dev split shown before each question.", min=0, max=32)
    lang: str = option("en", "Language of the benchmark prompt.", choices=EVAL_LANGS)
    save_dir: str | None = option(None, "Where benchmark results go (used when output_dir is not set).")
    batch_size: int | None = option(None, "Requests scored per forward pass (default: per_device_eval_batch_size).",
                                    min=1, max=1024)
    limit: float | None = option(None, "Questions scored per lm-eval task: a count (1 or more) or a fraction of "
                                       "the task (below 1); all when not set.", min=0, exclusive_min=True, step=1)
    apply_chat_template: bool = option(False, "Render each question with the chat template (`template`), the "
                                              "few-shot examples as earlier turns, as LLaMA-Factory scores; off: "
                                              "lm-eval's plain prompts, comparable with published scores.")
    download_mode: str = option("reuse_dataset_if_exists", "Whether the benchmarks' hub datasets are downloaded "
                                                           "again.",
                                choices=["reuse_dataset_if_exists", "reuse_cache_if_exists", "force_redownload"])
    compare_with: str | None = option(None, "Score a second model in the same table: `base` (the model without "
                                            "adapter_name_or_path) or another adapter folder.")
