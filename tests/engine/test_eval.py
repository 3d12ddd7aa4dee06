"""Evaluate & Predict: metrics on hand-checked text, benchmarks and predictions on the tiny model, eval during training."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError, DataError, StudioError
from engine.eval import check_eval_config
from engine.eval.metrics import score_corpus, score_pair, tokenize
from engine.eval.report import format_table
from engine.eval.tasks import Question, Subject, Task, list_tasks, load_task, read_questions
from engine.validation import validate_config


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trainer_log.jsonl").read_text().splitlines()]


def status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def eval_config(model_dir: Path, out: Path, *overrides: str):
    return load_config(None, [f"model_name_or_path={model_dir}", f"output_dir={out}", "seed=7", *overrides])


# ---------------------------------------------------------------- metrics


def test_exact_match_of_a_long_answer_scores_100():
    text = "The capital of France is Paris."
    assert score_pair(text, text) == pytest.approx(dict.fromkeys(("bleu-4", "rouge-1", "rouge-2", "rouge-l"), 100.0))


def test_partial_overlap_gives_the_hand_computed_scores():
    scores = score_pair("the cat lay on the mat", "the cat sat on the mat")
    # 5 of 6 words shared; bigrams: "the cat", "on the", "the mat" of 5; LCS "the cat on the mat" = 5 words.
    assert scores["rouge-1"] == pytest.approx(100 * 5 / 6)
    assert scores["rouge-2"] == pytest.approx(100 * 3 / 5)
    assert scores["rouge-l"] == pytest.approx(100 * 5 / 6)
    # BLEU: p1 = 5/6, p2 = 3/5, p3 = 1/4 ("on the mat"), p4 = 0/3 → smoothed to 1/(2·3); same length, no penalty.
    assert scores["bleu-4"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)


def test_short_answers_use_nist_geometric_smoothing():
    # One word: no 2-, 3-, 4-grams, smoothed to 1/2, 1/4, 1/8 (method 3), so an exact match is not 100.
    assert score_pair("yes", "yes")["bleu-4"] == pytest.approx(100 * (1 * 1 / 2 * 1 / 4 * 1 / 8) ** 0.25)
    assert score_pair("yes", "yes")["rouge-1"] == 100.0
    assert score_pair("Paris", "Paris France")["rouge-1"] == pytest.approx(100 * 2 / 3)
    assert score_pair("", "") == dict.fromkeys(("bleu-4", "rouge-1", "rouge-2", "rouge-l"), 100.0)
    assert score_pair("", "something")["bleu-4"] == 0.0


def test_chinese_text_is_split_into_words_by_jieba():
    assert tokenize("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    scores = score_pair("我爱北京天安门", "我爱北京")
    assert scores["rouge-1"] == pytest.approx(100 * 6 / 7)  # P = 3/4, R = 1
    assert scores["rouge-2"] == pytest.approx(100 * 4 / 5)  # P = 2/3, R = 1
    assert score_corpus(["我爱北京", "你好"], ["我爱北京", "再见"])["rouge-1"] == pytest.approx(50.0)


# ---------------------------------------------------------------- benchmark data


def test_shipped_benchmark_reads_subjects_and_answers():
    task = load_task("studio_bench_test", n_shot=5)
    assert [s.key for s in task.subjects] == ["arithmetic", "geography", "science", "language"]
    assert all(len(s.questions) == 8 and len(s.dev) == 5 for s in task.subjects)
    assert {s.category for s in task.subjects} == {"STEM", "Social Sciences", "Humanities"}
    first = task.subjects[0].questions[0]
    assert (first.question, first.choices[2], first.answer) == ("What is 12 + 19?", "31", "C")
    assert "studio_bench_test" in list_tasks() and "mmlu_test" in list_tasks()


def test_headerless_csv_and_bad_rows(tmp_path: Path):
    path = tmp_path / "x_test.csv"
    path.write_text('Which is even?,1,2,3,5,B\n"Id column, then question",a,b,c,d,A\n', encoding="utf-8")
    assert [q.answer for q in read_questions(path)] == ["B", "A"]
    path.write_text("question,A,B,C,D,answer\nQ?,1,2,3,4,E\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_questions(path)
    assert err.value.key == "benchmark_file_invalid" and "line 2" in err.value.message()


def test_offline_hub_task_names_the_task_and_the_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        load_task("mmlu_test", tmp_path)
    assert err.value.key == "benchmark_offline"
    message = err.value.message()
    assert "mmlu_test" in message and str(tmp_path / "mmlu") in message and "cais/mmlu" in message


def test_hub_rows_in_mmlu_and_ceval_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import datasets

    mmlu = {"dev": [{"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1}],
            "validation": [{"question": "2+2?", "choices": ["4", "5", "6", "7"], "answer": 0}],
            "test": [{"question": "3+3?", "choices": ["5", "7", "6", "8"], "answer": 2}] * 3}
    calls = []

    def fake_load(repo, name, revision=None, download_mode=None):
        calls.append((repo, name, revision))
        return mmlu

    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda repo, revision=None: ["all", "algebra"])
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    task = load_task("mmlu_test", tmp_path, n_shot=5)
    (subject,) = task.subjects
    assert (subject.key, subject.category, task.source) == ("algebra", "mmlu", "cais/mmlu")
    assert [q.answer for q in subject.dev] == ["B"] and [q.answer for q in subject.questions] == ["C"] * 3
    assert calls == [("cais/mmlu", "algebra", None)]
    ceval = {"dev": [{"id": 0, "question": "Q", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "D",
                      "explanation": ""}], "val": [{"id": 1, "question": "Q", "A": "a", "B": "b", "C": "c",
                                                    "D": "d", "answer": "A", "explanation": ""}]}
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, name, revision=None, download_mode=None: ceval)
    (tmp_path / "ceval").mkdir()
    (tmp_path / "ceval" / "mapping.json").write_text('{"law": {"name": "法学", "category": "Humanities"}}')
    (law,) = load_task("ceval_validation", tmp_path, n_shot=1).subjects
    assert (law.name, law.category, law.dev[0].answer, law.questions[0].answer) == ("法学", "Humanities", "D", "A")


def test_bad_eval_configs_are_refused_before_launch(tiny_model_dir: Path, tmp_path: Path):
    cases = {"eval_no_task": [], "eval_task_format": ["task=mmlu"], "benchmark_not_found": ["task=nothing_test"],
             "compare_base_without_adapter": ["task=studio_bench_test", "compare_with=base"],
             "adapter_not_found": ["task=studio_bench_test", "adapter_name_or_path=./no/such/adapter"],
             "eval_split_unavailable": ["task=cmmlu_validation"]}
    for key, overrides in cases.items():
        with pytest.raises(StudioError) as err:
            check_eval_config(eval_config(tiny_model_dir, tmp_path / "x", *overrides))
        assert err.value.key == key
    with pytest.raises(ConfigError) as err:
        check_eval_config(eval_config(tiny_model_dir, tmp_path / "x"), predict=True)
    assert err.value.key == "predict_no_data"


def test_comparison_table_has_a_column_per_model_and_the_difference():
    from engine.eval.report import summarize

    task = Task("t_test", "t", "test", "here", [Subject("alg", "algebra", "STEM", [], [Question("q", list("abcd"),
                                                                                                  "A")] * 4),
                                                Subject("his", "history", "Humanities", [], [])])
    base = summarize(task, {"alg": [1, 4]})
    tuned = summarize(task, {"alg": [3, 4]})
    table = format_table(task, {"base": base, "adapter": tuned}, n_shot=0)
    lines = table.splitlines()
    assert lines[1].split() == ["Subject", "Category", "base", "adapter", "Δ"]
    assert lines[3].split() == ["algebra", "STEM", "25.00", "75.00", "+50.00"]
    assert lines[4].split() == ["history", "Humanities", "-", "-", "-"]
    assert lines[-1].split() == ["Average", "25.00", "75.00", "+50.00"]


# ---------------------------------------------------------------- on the tiny model


@pytest.mark.slow
def test_benchmark_end_to_end(tiny_model_dir: Path, tmp_path: Path):
    from engine.eval.run import run_eval

    out = tmp_path / "eval"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=2", "batch_size=16")
    assert run_eval(check_eval_config(config)) == 0
    assert {"config.yaml", "status.json", "trainer_log.jsonl", "running_log.txt", "results.json",
            "results.log"} <= {p.name for p in out.iterdir()}
    assert status(out)["state"] == "finished"
    results = json.loads((out / "results.json").read_text())
    (label, scores), = results["models"].items()
    assert label == tiny_model_dir.name and results["complete"] is True and results["template"] == "chatml"
    for key, subject in scores["subjects"].items():
        assert subject["total"] == 8, key
        assert subject["accuracy"] == pytest.approx(100 * subject["correct"] / 8, abs=0.01)
    assert scores["categories"]["STEM"]["total"] == 16
    assert scores["average"]["total"] == 32
    assert [r["current_steps"] for r in records(out)] == [1, 2]
    assert records(out)[-1]["percentage"] == 100.0 and records(out)[-1]["stage"] == "eval"
    assert "Average" in (out / "results.log").read_text()


@pytest.mark.slow
def test_sigterm_stops_between_batches_and_marks_aborted(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    from engine.eval.progress import ProgressLog
    from engine.eval.run import run_eval

    advance = ProgressLog.advance

    def advance_then_stop(self: ProgressLog) -> None:
        advance(self)
        if self.done == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # what the studio's Abort sends

    monkeypatch.setattr(ProgressLog, "advance", advance_then_stop)
    out = tmp_path / "aborted"
    config = eval_config(tiny_model_dir, out, "eval_dataset=identity", "max_samples=6", "max_new_tokens=2",
                         "per_device_eval_batch_size=2", "do_sample=false")
    assert run_eval(config, predict=True) == 0
    assert status(out)["state"] == "aborted"
    assert len((out / "generated_predictions.jsonl").read_text().splitlines()) == 2
    assert json.loads((out / "predict_results.json").read_text())["predict_samples"] == 2


@pytest.mark.slow
def test_prediction_files(tiny_model_dir: Path, tmp_path: Path):
    from engine.eval.run import run_eval

    out = tmp_path / "predict"
    config = eval_config(tiny_model_dir, out, "eval_dataset=identity", "max_samples=5", "max_new_tokens=4",
                         "per_device_eval_batch_size=2", "do_predict=true")
    assert run_eval(check_eval_config(config)) == 0
    assert status(out)["state"] == "finished"
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(set(row) == {"prompt", "predict", "label"} for row in rows)
    assert rows[0]["prompt"].startswith("<|im_start|>user\n") and rows[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert "Studio Assistant" in rows[0]["label"]
    results = json.loads((out / "predict_results.json").read_text())
    assert {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l", "predict_samples"} <= set(results)
    assert [(r["current_steps"], r["total_steps"]) for r in records(out)] == [(1, 3), (2, 3), (3, 3)]


# ---------------------------------------------------------------- during training


def train(model_dir: Path, out: Path, *overrides: str) -> Path:
    from engine.train.run import run_training

    config = validate_config(load_config(None, [
        f"model_name_or_path={model_dir}", f"output_dir={out}", "logging_steps=1", "per_device_train_batch_size=4",
        "per_device_eval_batch_size=8", "cutoff_len=128", "seed=7", "dataset=identity", "max_samples=30",
        "val_size=0.2", "eval_strategy=steps", "eval_steps=2", "plot_loss=false", *overrides]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA run that evaluates every 2 steps and predicts its held-out rows after training."""
    return train(tiny_model_dir, tmp_path_factory.mktemp("lora") / "run", "max_steps=4", "learning_rate=1e-2",
                 "save_steps=100", "do_train=true", "do_predict=true", "max_new_tokens=4", "do_sample=false")


@pytest.mark.slow
def test_eval_loss_is_logged_during_training(lora_run: Path):
    evals = [r for r in records(lora_run) if "eval_loss" in r]
    assert [r["current_steps"] for r in evals] == [2, 4, 4]  # every 2 steps, then the final evaluation
    assert all("loss" not in r for r in evals)
    assert all(r.get("stage") is None for r in records(lora_run))  # predictions left the training log alone


@pytest.mark.slow
def test_do_predict_after_training_writes_predictions(lora_run: Path):
    rows = (lora_run / "generated_predictions.jsonl").read_text().splitlines()
    assert len(rows) == 6  # val_size 0.2 of 30 rows
    assert "predict_rouge-l" in json.loads((lora_run / "all_results.json").read_text())


@pytest.mark.slow
def test_llamafactory_predict_config_predicts_eval_dataset_with_the_adapter(tiny_model_dir: Path, lora_run: Path,
                                                                           tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch):
    """LLaMA-Factory's nlg_eval predict config (stage sft, do_predict, eval_dataset, no dataset, no do_train) run
    through `python -m engine train`: the base model with the run's adapter predicts eval_dataset, eval_num_beams
    wide, and nothing is trained."""
    import torch
    import yaml
    from transformers import AutoModelForCausalLM

    from engine.cli import main
    from engine.eval import predict as prediction
    from engine.train import sft

    loaded, beams = [], []
    load_model, generate = sft.load_model, prediction.generate_batch
    monkeypatch.setattr(sft, "load_model", lambda *a, **k: loaded.append(load_model(*a, **k)) or loaded[-1])
    monkeypatch.setattr(prediction, "generate_batch",
                        lambda model, tok, batch, gen, *a: beams.append(gen.num_beams) or generate(model, tok, batch,
                                                                                                     gen, *a))
    out = tmp_path / "predict"
    config = {"model_name_or_path": str(tiny_model_dir), "adapter_name_or_path": str(lora_run), "stage": "sft",
              "do_predict": True, "finetuning_type": "lora", "eval_dataset": "identity", "template": "chatml",
              "cutoff_len": 128, "max_samples": 5, "overwrite_cache": True, "output_dir": str(out),
              "overwrite_output_dir": True, "report_to": "none", "per_device_eval_batch_size": 2,
              "predict_with_generate": True, "max_new_tokens": 3, "do_sample": False, "eval_num_beams": 2}
    (tmp_path / "predict.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["train", str(tmp_path / "predict.yaml")]) == 0, (out / "running_log.txt").read_text()[-3000:]

    assert {p.name for p in out.iterdir()} == {"config.yaml", "status.json", "running_log.txt", ".lock",
                                               "trainer_log.jsonl", "generated_predictions.jsonl",
                                               "predict_results.json", "all_results.json"}
    assert status(out)["state"] == "finished"
    assert beams == [2, 2, 2]  # 5 rows in batches of 2, eval_num_beams wide
    rows = [json.loads(line) for line in (out / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(set(row) == {"prompt", "predict", "label"} for row in rows)
    assert "Studio Assistant" in rows[0]["label"]
    results = json.loads((out / "predict_results.json").read_text())
    assert {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l"} <= set(results)
    assert results["predict_samples"] == 5 and json.loads((out / "all_results.json").read_text()) == results
    assert [(r["current_steps"], r["total_steps"], r["stage"]) for r in records(out)] == [(1, 3, "predict"),
                                                                                         (2, 3, "predict"),
                                                                                         (3, 3, "predict")]
    (model,) = loaded  # the base with the trained adapter: its answers differ from the base model's
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    with torch.no_grad():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(ids).logits
        assert not torch.allclose(model.eval()(ids).logits, base)


def test_prediction_beam_width_is_eval_num_beams_else_num_beams():
    from types import SimpleNamespace

    from engine.eval.predict import generation_config

    tokenizer = SimpleNamespace(eos_token_id=2, pad_token_id=0, unk_token_id=3, convert_tokens_to_ids=lambda w: 3)
    template = SimpleNamespace(stop_words=[])
    width = [generation_config(load_config(None, items), tokenizer, template).num_beams
             for items in ([], ["num_beams=3"], ["num_beams=3", "eval_num_beams=4"])]
    assert width == [1, 3, 4]


@pytest.mark.slow
def test_compare_base_with_adapter(tiny_model_dir: Path, lora_run: Path, tmp_path: Path):
    from engine.eval.run import run_eval

    out = tmp_path / "compare"
    config = eval_config(tiny_model_dir, out, "task=studio_bench_test", "n_shot=0", "batch_size=32",
                         f"adapter_name_or_path={lora_run}", "compare_with=base")
    assert run_eval(check_eval_config(config)) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == ["base", "run"]
    base, tuned = results["models"]["base"], results["models"]["run"]
    for key, delta in results["difference"]["subjects"].items():
        assert delta == pytest.approx(tuned["subjects"][key]["accuracy"] - base["subjects"][key]["accuracy"], abs=0.01)
    header = (out / "results.log").read_text().splitlines()[1].split()
    assert header == ["Subject", "Category", "base", "run", "Δ"]
    assert len(records(out)) == 2  # one batch per model


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_eval_loss_stops_improving(tiny_model_dir: Path, tmp_path: Path):
    # A learning rate of 1e-30 leaves every weight unchanged in float32, so the second evaluation (step 4) is no
    # better than the first: with patience 1 the run stops there, long before max_steps.
    out = train(tiny_model_dir, tmp_path / "early", "max_steps=12", "learning_rate=1e-30", "save_steps=2",
                "early_stopping_patience=1", "load_best_model_at_end=true", "metric_for_best_model=eval_loss")
    evals = [r for r in records(out) if "eval_loss" in r]
    assert [r["current_steps"] for r in evals] == [2, 4, 4]  # the last one: the final evaluation of the best model
    assert evals[0]["eval_loss"] == evals[1]["eval_loss"]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4


def test_download_mode_reaches_the_hub_benchmark(tmp_path, monkeypatch):
    import datasets

    from engine.eval.tasks import load_task

    seen = []
    row = {"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1}

    def load_dataset(repo, key, revision=None, download_mode=None):
        seen.append(download_mode)
        return {split: [row] for split in ("test", "validation", "dev")}

    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda repo, revision=None: ["algebra"])
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    task = load_task("mmlu_test", tmp_path, n_shot=0, download_mode="force_redownload")
    assert seen == ["force_redownload"] and task.num_questions == 1
