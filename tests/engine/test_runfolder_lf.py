"""Run folders under LLaMA-Factory's file names and keys, so its board and scripts read ours: the results of each
split, trainer_state.json, trainer_log.jsonl, the curves, and the predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.plotting import curve_file, plot_loss
from engine.runfolder import TrainerLogWriter, merge_all_results, write_results
from engine.validation import validate_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# What LLaMA-Factory's board reads from the last line of trainer_log.jsonl (a KeyError without any of them).
LF_PROGRESS_KEYS = {"current_steps", "total_steps", "percentage", "elapsed_time", "remaining_time"}
LF_TRAIN_KEYS = {"train_loss", "train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                 "epoch"}
LF_EVAL_KEYS = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch"}
LF_PREDICT_KEYS = {"predict_bleu-4", "predict_rouge-1", "predict_rouge-2", "predict_rouge-l", "predict_runtime",
                   "predict_samples_per_second", "predict_steps_per_second"}


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sft_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA SFT run of 4 steps that evaluates every 2 steps, plots, and predicts its held-out rows."""
    from engine.train.run import run_training

    out = tmp_path_factory.mktemp("lf") / "run"
    config = validate_config(load_config(None, [
        f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "dataset=identity", "max_samples=20",
        "val_size=0.2", "cutoff_len=96", "max_steps=4", "logging_steps=1", "per_device_train_batch_size=4",
        "eval_strategy=steps", "eval_steps=2", "save_steps=100", "do_train=true", "do_predict=true",
        "max_new_tokens=3", "do_sample=false", "seed=7"]))
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return out


@pytest.mark.slow
def test_sft_run_folder_has_exactly_the_files_llamafactory_writes(sft_run: Path):
    files = {p.name for p in sft_run.iterdir() if p.is_file()}
    assert files == {
        # ours: the run-folder contract
        "config.yaml", "status.json", "running_log.txt", ".lock",
        # LLaMA-Factory's names
        "trainer_log.jsonl", "trainer_state.json", "train_results.json", "eval_results.json", "all_results.json",
        "training_loss.png", "training_eval_loss.png", "predict_results.json", "generated_predictions.jsonl",
        # the Trainer's and PEFT's saves
        "training_args.bin", "adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json",
        "tokenizer_config.json", "chat_template.jinja"}
    assert [p.name for p in sft_run.iterdir() if p.is_dir()] == ["checkpoint-4"]
    for name in ("training_loss.png", "training_eval_loss.png"):
        assert (sft_run / name).read_bytes()[:8] == PNG_MAGIC


@pytest.mark.slow
def test_results_files_have_llamafactory_keys(sft_run: Path):
    train = read_json(sft_run / "train_results.json")
    evaluation = read_json(sft_run / "eval_results.json")
    predict = read_json(sft_run / "predict_results.json")
    assert LF_TRAIN_KEYS <= set(train) and LF_EVAL_KEYS <= set(evaluation)
    assert set(predict) == LF_PREDICT_KEYS | {"predict_samples"} and predict["predict_samples"] == 4
    assert read_json(sft_run / "all_results.json") == {**train, **evaluation, **predict}
    state = read_json(sft_run / "trainer_state.json")  # what LLaMA-Factory's plot_loss reads
    assert state["global_step"] == 4
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4]
    assert [h["step"] for h in state["log_history"] if "eval_loss" in h] == [2, 4]  # saved before the final one


@pytest.mark.slow
def test_trainer_log_and_predictions_have_llamafactory_keys(sft_run: Path):
    lines = [json.loads(line) for line in (sft_run / "trainer_log.jsonl").read_text().splitlines()]
    assert all(LF_PROGRESS_KEYS <= set(line) for line in lines)
    training = [line for line in lines if "loss" in line]
    assert [line["current_steps"] for line in training] == [1, 2, 3, 4]
    assert all({"lr", "epoch"} <= set(line) for line in training)
    assert [line["current_steps"] for line in lines if "eval_loss" in line] == [2, 4, 4]
    rows = [json.loads(line) for line in (sft_run / "generated_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(set(row) == {"prompt", "predict", "label"} for row in rows)
    assert rows[0]["prompt"].endswith("<|im_start|>assistant\n") and rows[0]["label"]


def test_results_are_written_per_split_and_merged(tmp_path: Path):
    write_results(tmp_path, "train", {"train_loss": 1.5, "epoch": 1.0, "nested": {"skipped": 1}})
    write_results(tmp_path, "eval", {"eval_loss": 1.25, "epoch": 1.0})
    merge_all_results(tmp_path, {"predict_rouge-l": 12.5})
    assert read_json(tmp_path / "train_results.json") == {"epoch": 1.0, "train_loss": 1.5}
    assert read_json(tmp_path / "eval_results.json") == {"epoch": 1.0, "eval_loss": 1.25}
    assert read_json(tmp_path / "all_results.json") == {"epoch": 1.0, "train_loss": 1.5, "eval_loss": 1.25,
                                                        "predict_rouge-l": 12.5}
    # transformers' save_metrics layout: sorted keys, four spaces
    assert (tmp_path / "eval_results.json").read_text() == '{\n    "epoch": 1.0,\n    "eval_loss": 1.25\n}\n'


def test_curves_are_named_per_stage_as_llamafactory_names_them(tmp_path: Path):
    writer = TrainerLogWriter(tmp_path)
    for step in (1, 2, 3):
        writer.write({"current_steps": step, "loss": 1.0 / step, "rewards/accuracies": step / 4,
                      "rewards/chosen": 0.1 * step})
    writer.write({"current_steps": 3, "eval_loss": 0.5})
    assert [p.name for p in plot_loss(tmp_path, "dpo")] == ["training_loss.png", "training_rewards_accuracies.png",
                                                             "training_eval_loss.png"]
    assert [p.name for p in plot_loss(tmp_path, "kto")] == ["training_loss.png", "training_rewards_chosen.png",
                                                             "training_eval_loss.png"]
    assert [p.name for p in plot_loss(tmp_path, "sft")] == ["training_loss.png", "training_eval_loss.png"]
    assert curve_file("eval_loss") == "training_eval_loss.png"
    assert not (tmp_path / "loss.png").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert plot_loss(empty) == []


def test_the_studio_chart_shows_an_aliased_metric_once():
    from studio.monitor import metrics_frame

    dpo = metrics_frame([{"current_steps": 1, "rewards/accuracies": 0.5, "accuracy": 0.5}])
    assert list(dpo["series"]) == ["rewards/accuracies"]
    rm = metrics_frame([{"current_steps": 1, "accuracy": 0.75}])  # the reward model's own accuracy stays
    assert list(rm["series"]) == ["accuracy"]
