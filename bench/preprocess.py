"""Preprocessing speed: tokenizing a 20k-row alpaca dataset, first run and cached re-run, against `datasets.map`.

What it measures: the seconds from "config and tokenizer in hand" to "tokenized rows in hand" for a 20,000-row
alpaca dataset built by repeating `data/alpaca_en_demo.json` with deterministic variations (prefix and suffix
phrases, shuffled sentences, shifted numbers, a row number), so no two rows are identical. It reports rows/s, the
tokens produced and the peak RSS of the process (and how much of it the step added).

Variants, each in a fresh subprocess (so timings and peak RSS are per variant; `--quick` runs them all in one),
interleaved when repeated:
- `baseline-first`: what a competent user writes: `datasets.load_dataset("json", ...)` then `.map(fn)` where `fn`
  renders the conversation with the tokenizer's own chat template (`apply_chat_template`), tokenizes it and masks
  the labels of the prompt; an empty datasets cache.
- `baseline-rerun`: the same script again, now hitting datasets' own cache.
- `ours-first`: `engine.data.pipeline.prepare_datasets` (read, convert, render with the chat template, tokenize,
  save to the tokenization cache), with an empty cache.
- `ours-cached`: the same again, loading from the tokenization cache.
- `ours-first-workers2`: `ours-first` with `preprocessing_num_workers: 2`.
Both sides use the demo model's tokenizer and ChatML layout, cutoff_len 1024 (no row is cut); the tokenizer's own
jinja ends each row with a newline after `<|im_end|>`, so the baseline's rows are one token longer. Children run
with TOKENIZERS_PARALLELISM=false unless the caller sets it (the Rust tokenizer then uses one core).

Baseline: `baseline-first` and `baseline-rerun` rows/s. Target: `ours-first` at least 1.5× `baseline-first` rows/s,
and `ours-cached` at least 10× `ours-first` and at least as fast as `baseline-rerun`.

    .venv/bin/python bench/preprocess.py [--quick] [--repeats N] [--results-dir DIR]
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, parser, peak_rss_mib, print_table, python_executable, summarize, write_result

ROWS = 20_000
QUICK_ROWS = 500
CUTOFF_LEN = 1024
DATASET = "alpaca_bench"
VARIANTS = ("baseline-first", "baseline-rerun", "ours-first", "ours-cached", "ours-first-workers2")
FIRST_RUN_TARGET = 1.5  # ours-first rows/s over baseline-first rows/s
CACHED_TARGET = 10.0  # ours-cached rows/s over ours-first rows/s
# The demo tokenizer does not depend on the model's size: a small model builds faster.
MODEL = {"hidden_size": 64, "num_layers": 1, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128}
PREFIXES = ("", "Please help me with this. ", "Quick question: ", "For a class assignment, ", "Be brief. ",
            "I have always wondered about this. ", "My teacher asked: ")
SUFFIXES = ("", " Thanks!", " Keep it short.", " Explain your reasoning.", " Use plain words.", " One paragraph.")


# ---------------------------------------------------------------- the dataset


def _shift_numbers(text: str, shift: int) -> str:
    return re.sub(r"\d+", lambda m: str(int(m.group()) + shift), text)


def _shuffle_sentences(text: str, rng: random.Random) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    if len(sentences) > 1:
        rng.shuffle(sentences)
    return " ".join(sentences)


def varied_rows(count: int) -> list[dict[str, str]]:
    """`count` alpaca rows: the demo rows repeated, each copy varied deterministically."""
    base = json.loads((REPO_ROOT / "data" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    rows = []
    for index in range(count):
        row, copy = base[index % len(base)], index // len(base)
        rng = random.Random(index)
        instruction = PREFIXES[copy % len(PREFIXES)] + row["instruction"] + SUFFIXES[index % len(SUFFIXES)]
        output = _shuffle_sentences(_shift_numbers(row["output"], copy), rng) if copy else row["output"]
        rows.append({"instruction": instruction, "input": _shift_numbers(row.get("input", ""), copy),
                     "output": f"{output} (Answer {index}.)"})
    return rows


def build_workdir(folder: Path, rows: int) -> dict[str, str]:
    """The dataset (registered in its own dataset_info.json) and the demo model; returns their paths."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    (data_dir / f"{DATASET}.json").write_text(json.dumps(varied_rows(rows), ensure_ascii=False), encoding="utf-8")
    (data_dir / "dataset_info.json").write_text(json.dumps({DATASET: {"file_name": f"{DATASET}.json"}}),
                                                encoding="utf-8")
    code = "import json, sys; from engine.model.demo import build_demo_model; build_demo_model(sys.argv[1], " \
           "**json.loads(sys.argv[2]))"
    subprocess.run([python_executable(), "-c", code, str(folder / "model"), json.dumps(MODEL)], cwd=REPO_ROOT,
                   env=child_env(), capture_output=True, text=True, check=True)
    return {"data_dir": str(data_dir), "data_file": str(data_dir / f"{DATASET}.json"), "model": str(folder / "model")}


# ---------------------------------------------------------------- one variant (inside a child process)


def run_baseline(paths: dict[str, str], cache_dir: str) -> dict[str, Any]:
    """`datasets.load_dataset` + `.map` with the tokenizer's chat template; returns rows and tokens."""
    from datasets import load_dataset
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(paths["model"])

    def tokenize(row: dict[str, str]) -> dict[str, list[int]]:
        user = f"{row['instruction']}\n{row['input']}" if row["input"].strip() else row["instruction"]
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"]}]
        prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        prompt_len = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        input_ids = tokenizer(full, add_special_tokens=False)["input_ids"][:CUTOFF_LEN]
        labels = [-100] * min(prompt_len, len(input_ids)) + input_ids[prompt_len:]
        return {"input_ids": input_ids, "labels": labels, "attention_mask": [1] * len(input_ids)}

    tokenizer("warm up", add_special_tokens=False)
    before = peak_rss_mib()
    started = time.perf_counter()
    dataset = load_dataset("json", data_files=paths["data_file"], split="train", cache_dir=cache_dir)
    dataset = dataset.map(tokenize, remove_columns=dataset.column_names)
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids in dataset["input_ids"])
    return {"seconds": seconds, "sequences": len(dataset), "tokens": tokens, "rss_before_mib": before}


def run_ours(paths: dict[str, str], workers: int | None) -> dict[str, Any]:
    """`prepare_datasets` as the SFT stage calls it (the cache folder comes from STUDIO_TOKENIZED_CACHE)."""
    from engine.config import load_config
    from engine.data.pipeline import prepare_datasets
    from engine.model.chat_template import load_template
    from engine.model.loader import load_tokenizer

    overrides = [f"model_name_or_path={paths['model']}", f"dataset={DATASET}", f"dataset_dir={paths['data_dir']}",
                 f"cutoff_len={CUTOFF_LEN}", "output_dir=unused"]
    if workers:
        overrides.append(f"preprocessing_num_workers={workers}")
    config = load_config(None, overrides)
    tokenizer = load_tokenizer(config.model)
    template = load_template(None, paths["model"], tokenizer)
    tokenizer("warm up", add_special_tokens=False)
    before = peak_rss_mib()
    started = time.perf_counter()
    train, _ = prepare_datasets(config, template, tokenizer)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "sequences": len(train), "tokens": train.num_tokens, "rss_before_mib": before}


def child(variants: list[str], paths: dict[str, str], caches: dict[str, str], result_file: Path) -> None:
    """Run `variants` in order in this fresh process and write their numbers to `result_file`."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    results = {}
    for variant in variants:
        if variant.startswith("baseline"):
            import datasets

            datasets.disable_progress_bars()
            result = run_baseline(paths, caches[variant])
        else:
            os.environ["STUDIO_TOKENIZED_CACHE"] = caches[variant]
            result = run_ours(paths, 2 if variant.endswith("workers2") else None)
        result["peak_rss_mib"] = peak_rss_mib()
        results[variant] = result
    result_file.write_text(json.dumps(results), encoding="utf-8")


# ---------------------------------------------------------------- orchestration


def child_env() -> dict[str, str]:
    """Offline, quiet, with the repository importable; TOKENIZERS_PARALLELISM as the caller set it (default off)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def run_child(variants: list[str], paths: dict[str, str], caches: dict[str, str], scratch: Path) -> dict[str, Any]:
    """`variants` in one fresh subprocess; their numbers, or a clear error with the tail of its output."""
    result_file = scratch / f"result-{time.monotonic_ns()}.json"
    cmd = [python_executable(), str(Path(__file__).resolve()), "--child", ",".join(variants), "--paths",
           json.dumps(paths), "--caches", json.dumps(caches), "--result-file", str(result_file)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True)
    if proc.returncode != 0 or not result_file.exists():
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"variants {', '.join(variants)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(result_file.read_text(encoding="utf-8"))


def one_round(paths: dict[str, str], scratch: Path, index: int, *, one_process: bool) -> dict[str, dict[str, Any]]:
    """Every variant once; first runs get empty caches, re-runs reuse the cache their first run filled.

    Each variant runs in a process of its own, unless `one_process` (the quick smoke run) puts them all in one.
    """
    caches = {"baseline-first": f"hf-cache-{index}", "baseline-rerun": f"hf-cache-{index}",
              "ours-first": f"tok-cache-{index}", "ours-cached": f"tok-cache-{index}",
              "ours-first-workers2": f"tok-cache-workers-{index}"}
    caches = {variant: str(scratch / folder) for variant, folder in caches.items()}
    if one_process:
        return run_child(list(VARIANTS), paths, caches, scratch)
    results = {}
    for variant in VARIANTS:
        results.update(run_child([variant], paths, caches, scratch))
    return results


def summarize_variant(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """Medians over the repeats (the runs themselves are kept too)."""
    seconds = summarize(run["seconds"] for run in runs)
    peak = summarize(run["peak_rss_mib"] for run in runs)
    added = summarize(run["peak_rss_mib"] - run["rss_before_mib"] for run in runs)
    return {"seconds": seconds["median"], "rows_per_s": rows / seconds["median"], "spread": seconds,
            "peak_rss_mib": peak["median"], "peak_rss_added_mib": added["median"],
            "sequences": runs[0]["sequences"], "tokens": runs[0]["tokens"], "runs": runs}


def compare(variants: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of rows/s and whether the target was met."""
    rate = {name: v["rows_per_s"] for name, v in variants.items()}
    ratios = {"ours_first_vs_baseline_first": rate["ours-first"] / rate["baseline-first"],
              "ours_cached_vs_ours_first": rate["ours-cached"] / rate["ours-first"],
              "ours_cached_vs_baseline_rerun": rate["ours-cached"] / rate["baseline-rerun"],
              "ours_workers2_vs_ours_first": rate["ours-first-workers2"] / rate["ours-first"],
              "baseline_rerun_vs_baseline_first": rate["baseline-rerun"] / rate["baseline-first"]}
    met = (ratios["ours_first_vs_baseline_first"] >= FIRST_RUN_TARGET
           and ratios["ours_cached_vs_ours_first"] >= CACHED_TARGET
           and ratios["ours_cached_vs_baseline_rerun"] >= 1.0)
    return {"ratios": ratios, "target_met": met}


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=None, help="rounds of all variants (default 3; quick: 1)")
    ap.add_argument("--child", help="internal: run these variants (comma-separated) in this process")
    ap.add_argument("--paths", help="internal: the dataset and model paths, as JSON")
    ap.add_argument("--caches", help="internal: each variant's cache folder, as JSON")
    ap.add_argument("--result-file", type=Path, help="internal: where a child writes its numbers")
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO_ROOT))
        child(args.child.split(","), json.loads(args.paths), json.loads(args.caches), args.result_file)
        return 0
    rows = QUICK_ROWS if args.quick else ROWS
    repeats = args.repeats or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        scratch = Path(tmp)
        paths = build_workdir(scratch, rows)
        rounds = [one_round(paths, scratch, index, one_process=args.quick) for index in range(repeats)]
    variants = {v: summarize_variant([r[v] for r in rounds], rows) for v in VARIANTS}
    verdict = compare(variants)
    base = variants["baseline-first"]["rows_per_s"]
    table = [[v, n["seconds"], n["rows_per_s"], n["rows_per_s"] / base, n["tokens"], n["peak_rss_mib"],
              n["peak_rss_added_mib"]] for v, n in variants.items()]
    print_table(f"Tokenizing {rows} alpaca rows (cutoff {CUTOFF_LEN}), median of {repeats} round(s)",
                ["variant", "seconds", "rows/s", "× baseline-first", "tokens", "peak RSS MiB", "RSS added MiB"],
                table)
    print(f"target (ours-first ≥ {FIRST_RUN_TARGET}× baseline-first, ours-cached ≥ {CACHED_TARGET}× ours-first "
          f"and ≥ baseline-rerun) {'met' if verdict['target_met'] else 'NOT met'}")
    payload = {"quick": args.quick, "rows": rows, "repeats": repeats, "cutoff_len": CUTOFF_LEN,
               "tokenizers_parallelism": child_env()["TOKENIZERS_PARALLELISM"],
               "baseline": "datasets.load_dataset('json') + .map(fn) with tokenizer.apply_chat_template, prompt "
                           "labels masked; first run (empty datasets cache) and re-run (its cache hit)",
               "target": f"ours-first >= {FIRST_RUN_TARGET}x baseline-first rows/s; ours-cached >= "
                         f"{CACHED_TARGET}x ours-first and >= baseline-rerun",
               "variants": variants, **verdict}
    write_result("preprocess", payload, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
