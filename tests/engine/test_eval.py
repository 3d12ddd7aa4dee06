"""Evaluate & Predict: metrics on hand-checked text, predictions on the tiny model, eval during training (benchmarks:
test_lm_eval.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.config import load_config
from engine.eval import check_eval_config
from engine.eval.metrics import score_corpus, score_pair, tokenize
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


# ---------------------------------------------------------------- on the tiny model


def abort_after_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send this process SIGTERM (what the studio's Abort sends) once an eval job logs its first step."""
    from engine.eval.progress import ProgressLog

    advance = ProgressLog.advance

    def advance_then_stop(self: ProgressLog) -> None:
        advance(self)
        if self.done == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ProgressLog, "advance", advance_then_stop)


@pytest.mark.slow
def test_sigterm_stops_between_batches_and_marks_aborted(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    from engine.eval.run import run_eval

    abort_after_first_step(monkeypatch)
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
def test_early_stopping_ends_a_run_whose_eval_loss_stops_improving(tiny_model_dir: Path, tmp_path: Path):
    # A learning rate of 1e-30 leaves every weight unchanged in float32, so the second evaluation (step 4) is no
    # better than the first: with patience 1 the run stops there, long before max_steps.
    out = train(tiny_model_dir, tmp_path / "early", "max_steps=12", "learning_rate=1e-30", "save_steps=2",
                "early_stopping_patience=1", "load_best_model_at_end=true", "metric_for_best_model=eval_loss")
    evals = [r for r in records(out) if "eval_loss" in r]
    assert [r["current_steps"] for r in evals] == [2, 4, 4]  # the last one: the final evaluation of the best model
    assert evals[0]["eval_loss"] == evals[1]["eval_loss"]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
