"""Benchmarks through lm-evaluation-harness: task names, the shipped offline task and LLaMA-Factory CSV folders as
lm-eval tasks, clear refusals (unknown name, hub task while offline), and runs on the tiny model with and without
a LoRA adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, DataError, StudioError
from engine.eval import check_eval_config
from engine.eval.csv_tasks import read_questions
from engine.eval.harness import load_tasks
from engine.eval.tasks import list_tasks, resolve_tasks
from engine.paths import resource_dir
from engine.validation import validate_config

pytest.importorskip("lm_eval")


def eval_config(model_dir: Path, out: Path, *overrides: str):
    return load_config(None, [f"model_name_or_path={model_dir}", f"output_dir={out}", "seed=7", *overrides])


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- task names


def test_llamafactory_names_map_to_lm_eval_tasks():
    plans = {name: resolve_tasks(name) for name in ("mmlu_test", "ceval_validation", "cmmlu_test")}
    assert {name: (plan.specs, plan.hub) for name, plan in plans.items()} == {
        "mmlu_test": (["mmlu"], ["mmlu"]), "ceval_validation": (["ceval-valid"], ["ceval-valid"]),
        "cmmlu_test": (["cmmlu"], ["cmmlu"])}
    shipped = resolve_tasks("studio_bench_test")
    assert shipped.specs == ["studio_bench"] and shipped.hub == []
    assert shipped.include_path == [str(resource_dir("evaluation") / "studio_bench")]
    assert {"studio_bench_test", "mmlu_test", "ceval_validation", "cmmlu_test"} <= set(list_tasks())


def test_any_lm_eval_name_is_checked_against_its_index():
    plan = resolve_tasks("arc_easy,studio_bench_test")
    assert plan.specs == ["arc_easy", "studio_bench"] and plan.hub == ["arc_easy"]
    with pytest.raises(ConfigError) as err:
        resolve_tasks("hellaswagg")
    message = err.value.message()
    assert err.value.key == "eval_task_unknown" and "hellaswag" in message and "studio_bench_test" in message


def test_bad_eval_configs_are_refused_before_launch(tiny_model_dir: Path, tmp_path: Path):
    cases = {"eval_no_task": [], "eval_task_unknown": ["task=nothing_test"],
             "compare_base_without_adapter": ["task=studio_bench_test", "compare_with=base"],
             "adapter_not_found": ["task=studio_bench_test", "adapter_name_or_path=./no/such/adapter"],
             "eval_split_unavailable": ["task=cmmlu_validation"],
             "benchmark_not_found": ["task=studio_bench_validation"]}
    for key, overrides in cases.items():
        with pytest.raises(StudioError) as err:
            check_eval_config(eval_config(tiny_model_dir, tmp_path / "x", *overrides))
        assert err.value.key == key, overrides
    with pytest.raises(ConfigError) as err:
        check_eval_config(eval_config(tiny_model_dir, tmp_path / "x"), predict=True)
    assert err.value.key == "predict_no_data"


def test_hub_task_while_offline_names_the_offline_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import datasets
    import huggingface_hub

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        load_tasks(resolve_tasks("ceval_validation"))
    message = err.value.message()
    assert err.value.key == "eval_task_needs_network"
    assert "ceval_validation" in message and "ceval-valid" in message and "studio_bench_test" in message


# ---------------------------------------------------------------- local tasks


def test_shipped_benchmark_is_an_lm_eval_group():
    _, loaded = load_tasks(resolve_tasks("studio_bench_test"))
    assert loaded["group_map"]["studio_bench"] == ["studio_bench::studio_bench_stem",
                                                   "studio_bench::studio_bench_social_sciences",
                                                   "studio_bench::studio_bench_humanities"]
    arithmetic = loaded["tasks"]["studio_bench_arithmetic"]
    first = arithmetic.test_docs()[0]
    assert (first["question"], first["C"], first["answer"]) == ("What is 12 + 19?", "31", "C")
    assert arithmetic.doc_to_target(first) == 2 and len(arithmetic.test_docs()) == 8
    assert len(arithmetic.fewshot_docs()) == 5


def test_csv_folder_becomes_an_lm_eval_group_with_the_chosen_prompt(tmp_path: Path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "law_dev.csv").write_text("0,Q1?,a,b,c,d,D\n", encoding="utf-8")  # headerless, with an id column
    (folder / "law_val.csv").write_text("question,A,B,C,D,answer\nQ2?,e,f,g,h,A\nQ3?,i,j,k,l,B\n", encoding="utf-8")
    (folder / "mapping.json").write_text('{"law": {"name": "法学", "category": "Humanities"}}', encoding="utf-8")
    plan = resolve_tasks("bench_validation", tmp_path, lang="zh", n_shot=1)
    _, loaded = load_tasks(plan)
    assert loaded["group_map"] == {"bench": ["bench::bench_humanities"],
                                   "bench::bench_humanities": ["bench::bench_humanities::bench_law"]}
    (task,) = loaded["tasks"].values()
    assert [task.doc_to_target(d) for d in task.test_docs()] == [0, 1]
    assert task.fewshot_context(task.test_docs()[0], num_fewshot=1) == (
        "以下是中国关于法学考试的单项选择题，请选出其中的正确答案。\n\n"
        "Q1?\nA. a\nB. b\nC. c\nD. d\n答案： D\n\nQ2?\nA. e\nB. f\nC. g\nD. h\n答案：")


def test_lm_eval_yaml_in_task_dir_runs_by_name_and_download_mode_fetches_again(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    import datasets

    (tmp_path / "rows.csv").write_text("question,answer\nSky?,blue\nGrass?,green\n", encoding="utf-8")
    (tmp_path / "colours.yaml").write_text(
        "task: my_colours\ndataset_path: csv\ndataset_kwargs:\n  data_files:\n    test: "
        f"{tmp_path / 'rows.csv'}\ntest_split: test\noutput_type: generate_until\n"
        "doc_to_text: '{{question}}'\ndoc_to_target: '{{answer}}'\n"
        "metric_list:\n  - metric: exact_match\n", encoding="utf-8")
    plan = resolve_tasks("my_colours", tmp_path)
    assert plan.specs == ["my_colours"] and plan.hub == []  # its YAML lives in task_dir
    modes = []
    load_dataset = datasets.load_dataset
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: modes.append(k.get("download_mode")) or load_dataset(*a, **k))
    _, loaded = load_tasks(plan, "force_redownload")
    assert modes == [None, "force_redownload", None]  # lm-eval's load, the fetch again, lm-eval's load of it
    assert [d["answer"] for d in loaded["tasks"]["my_colours"].test_docs()] == ["blue", "green"]


def test_bad_csv_rows_name_the_file_and_line(tmp_path: Path):
    path = tmp_path / "x_test.csv"
    path.write_text("question,A,B,C,D,answer\nQ?,1,2,3,4,E\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_questions(path)
    assert err.value.key == "benchmark_file_invalid" and "line 2" in err.value.message()


# ---------------------------------------------------------------- on the tiny model


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter trained a few steps at a high learning rate (so its scores can differ from the base's)."""
    from engine.train.run import run_training

    out = tmp_path_factory.mktemp("lm_eval_lora") / "run"
    config = validate_config(load_config(None, [
        f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "dataset=identity", "max_samples=16",
        "cutoff_len=64", "per_device_train_batch_size=4", "max_steps=3", "learning_rate=5e-2", "seed=7",
        "plot_loss=false", "save_steps=100"]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_offline_task_through_lm_eval_on_the_base_model(tiny_model_dir: Path, tmp_path: Path):
    from engine.eval.run import run_eval

    out = tmp_path / "eval"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=2", "limit=3", "batch_size=8")
    assert run_eval(check_eval_config(config)) == 0, (out / "running_log.txt").read_text()[-3000:]
    assert read(out / "status.json")["state"] == "finished"
    native = read(out / "lm_eval_results_tiny.json")  # lm-eval's own layout
    assert {"results", "groups", "group_subtasks", "configs", "versions", "n-shot", "n-samples", "config",
            "chat_template"} <= set(native)
    assert native["model_name"] == "tiny" and native["chat_template"] is None
    assert native["n-shot"]["studio_bench_arithmetic"] == 2
    assert native["n-samples"]["studio_bench_arithmetic"] == {"original": 8, "effective": 3}
    results = read(out / "results.json")
    assert results["task"] == "studio_bench_test" and results["tasks"] == ["studio_bench"]
    assert results["lm_eval_results"] == {"tiny": "lm_eval_results_tiny.json"}
    (label, scores), = results["models"].items()
    assert label == "tiny" and results["complete"] is True
    assert set(scores["subjects"]) == {f"studio_bench_{s}" for s in ("arithmetic", "geography", "science", "language")}
    assert scores["subjects"]["studio_bench_language"]["name"] == "English language"
    for key, subject in scores["subjects"].items():
        acc = native["results"][key]["acc,none"]
        assert (subject["metric"], subject["accuracy"], subject["total"]) == ("acc", round(100 * acc, 2), 3), key
    assert set(scores["categories"]) == {"STEM", "Social Sciences", "Humanities"}
    assert scores["categories"]["STEM"]["total"] == 6
    assert scores["average"] == {"accuracy": round(100 * native["results"]["studio_bench"]["acc,none"], 2),
                                 "total": 12}
    assert _records(out)[-1]["percentage"] == 100.0 and _records(out)[-1]["stage"] == "eval"
    assert "Average" in (out / "results.log").read_text()


@pytest.mark.slow
def test_offline_task_with_an_adapter_beside_the_base(tiny_model_dir: Path, adapter: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    from engine.eval import benchmark
    from engine.eval.run import run_eval

    wrapped = []
    wrap = benchmark.wrap_model
    monkeypatch.setattr(benchmark, "wrap_model", lambda model, *a: wrapped.append(type(model).__name__) or wrap(
        model, *a))
    out = tmp_path / "compare"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=0", "limit=4", "batch_size=16",
                         f"adapter_name_or_path={adapter}", "compare_with=base")
    assert run_eval(check_eval_config(config)) == 0, (out / "running_log.txt").read_text()[-3000:]
    assert wrapped[0] != wrapped[1] and wrapped[1].startswith("PeftModel")  # the base, then base + our adapter
    results = read(out / "results.json")
    assert list(results["models"]) == ["base", "run"]
    assert {p.name for p in out.glob("lm_eval_results_*.json")} == {"lm_eval_results_base.json",
                                                                   "lm_eval_results_run.json"}
    base, tuned = results["models"]["base"], results["models"]["run"]
    for key, delta in results["difference"]["subjects"].items():
        assert delta == pytest.approx(tuned["subjects"][key]["accuracy"] - base["subjects"][key]["accuracy"], abs=0.01)
    assert (out / "results.log").read_text().splitlines()[1].split() == ["Subject", "Category", "base", "run", "Δ"]
    assert read(out / "lm_eval_results_run.json")["n-shot"]["studio_bench_science"] == 0


@pytest.mark.slow
def test_chat_template_renders_each_question_with_the_runs_template(tiny_model_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    from lm_eval.models.huggingface import HFLM

    from engine.eval.run import run_eval

    rendered = []
    apply = HFLM.apply_chat_template
    monkeypatch.setattr(HFLM, "apply_chat_template",
                        lambda self, history, *a, **k: rendered.append(apply(self, history, *a, **k)) or rendered[-1])
    out = tmp_path / "chat"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=1", "limit=1", "batch_size=8",
                         "apply_chat_template=true")
    assert run_eval(check_eval_config(config)) == 0, (out / "running_log.txt").read_text()[-3000:]
    # One solved example as an earlier turn, then the question, up to the assistant's reply (ChatML, the template).
    assert rendered[0].count("<|im_start|>user\n") == 2 and rendered[0].endswith("<|im_start|>assistant\n")
    assert "What is 7 + 5?" in rendered[0] and "Answer:<|im_end|>" in rendered[0]
    native = read(out / "lm_eval_results_tiny.json")
    assert native["fewshot_as_multiturn"] is True and "im_start" in native["chat_template"]
    assert read(out / "results.json")["template"] == "chatml"


@pytest.mark.slow
def test_offline_task_on_a_4bit_base_with_an_adapter(tiny_model_dir: Path, adapter: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("bitsandbytes")
    from engine.eval import benchmark
    from engine.eval.run import run_eval

    quantized = []
    wrap = benchmark.wrap_model

    def spy(model, *args):
        quantized.append(sorted({type(m).__name__ for m in model.modules() if "4bit" in type(m).__name__}))
        return wrap(model, *args)

    monkeypatch.setattr(benchmark, "wrap_model", spy)
    out = tmp_path / "q4"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=1", "limit=2", "batch_size=8",
                         "quantization_bit=4", f"adapter_name_or_path={adapter}")
    assert run_eval(check_eval_config(config)) == 0, (out / "running_log.txt").read_text()[-3000:]
    assert quantized == [["Linear4bit"]]  # lm-eval scored the base our loader quantized, adapter on top
    assert read(out / "results.json")["models"]["run"]["average"]["total"] == 8


@pytest.mark.slow
def test_sigterm_stops_between_forward_passes_and_keeps_the_folder(tiny_model_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch):
    from engine.eval.run import run_eval
    from tests.engine.test_eval import abort_after_first_step

    abort_after_first_step(monkeypatch)
    out = tmp_path / "aborted"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=0", "batch_size=4")
    assert run_eval(check_eval_config(config)) == 0
    assert read(out / "status.json")["state"] == "aborted"
    results = read(out / "results.json")
    assert results["complete"] is False and results["models"] == {}
    assert not list(out.glob("lm_eval_results_*.json")) and [r["current_steps"] for r in _records(out)] == [1]
