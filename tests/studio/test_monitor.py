"""The monitor on hand-written run folders: incremental reads, restarts, curves, states and their texts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import studio.monitor as monitor_module
from engine.errors import load_locale
from engine.plotting import smooth
from engine.runfolder import process_start_time, write_status
from studio.monitor import RunMonitor, RunView, progress_text, status_markdown


def record(step: int, total: int = 10, **extra: float) -> dict:
    return {"current_steps": step, "total_steps": total, "percentage": round(step / total * 100, 2),
            "elapsed_time": f"0:00:{step:02d}", "remaining_time": f"0:00:{total - step:02d}", **extra}


def append(run_dir: Path, *records: dict, partial: str = "") -> None:
    with open(run_dir / "trainer_log.jsonl", "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records) + partial)


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run folder whose process (this test) is alive."""
    folder = tmp_path / "saves" / "m" / "lora" / "run"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("stage: sft\n")
    write_status(folder, "running", pid=os.getpid(), pid_start_time=process_start_time(os.getpid()))
    return folder


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets the monitor asks read_trainer_log for."""
    offsets: list[int] = []
    real = monitor_module.read_trainer_log

    def counting(run_dir: Path, offset: int = 0):
        offsets.append(offset)
        return real(run_dir, offset)

    monkeypatch.setattr(monitor_module, "read_trainer_log", counting)
    return offsets


def test_polls_read_only_what_was_appended(run_dir: Path, reads: list[int]):
    monitor = RunMonitor()
    view = monitor.poll(run_dir)
    assert (view.state, view.message_key) == ("running", "monitor.starting") and reads == []
    append(run_dir, record(1, loss=2.0, lr=1e-3), record(2, loss=1.5, lr=1e-3))
    view = monitor.poll(run_dir)
    assert (view.current_steps, view.total_steps, view.percentage) == (2, 10, 20.0)
    assert view.message_key == "monitor.running" and view.message_params["current"] == 2
    assert reads == [0]
    size = (run_dir / "trainer_log.jsonl").stat().st_size
    monitor.poll(run_dir)
    assert reads == [0], "a poll without new lines does not read the file"
    append(run_dir, record(3, loss=1.2), partial='{"current_steps": 4, "lo')
    view = monitor.poll(run_dir)
    assert reads == [0, size] and view.current_steps == 3, "a half-written line waits for its end"
    append(run_dir, partial='ss": 1.0, "total_steps": 10}\n')
    view = monitor.poll(run_dir)
    assert view.current_steps == 4 and list(view.loss[view.loss.series == "loss"]["value"]) == [2.0, 1.5, 1.2, 1.0]


def test_a_shrunk_or_replaced_log_is_read_again_from_the_start(run_dir: Path, reads: list[int]):
    monitor = RunMonitor()
    append(run_dir, *(record(i, loss=3.0 - i / 10) for i in range(1, 6)))
    assert monitor.poll(run_dir).current_steps == 5
    # A resume from checkpoint-2 rewrites the log (a new file), then appends past the old size.
    tmp = run_dir / ".trainer_log.tmp"
    tmp.write_text("".join(json.dumps(record(i, loss=9.0)) + "\n" for i in range(1, 3)))
    tmp.replace(run_dir / "trainer_log.jsonl")
    append(run_dir, *(record(i, loss=9.0) for i in range(3, 9)))
    view = monitor.poll(run_dir)
    assert view.current_steps == 8 and set(view.loss[view.loss.series == "loss"]["value"]) == {9.0}
    assert reads[-1] == 0
    (run_dir / "trainer_log.jsonl").write_text(json.dumps(record(1, loss=5.0)) + "\n")  # truncated in place
    view = monitor.poll(run_dir)
    assert view.current_steps == 1 and list(view.loss["value"]) == [5.0, 5.0] and reads[-1] == 0
    (run_dir / "trainer_log.jsonl").unlink()
    view = monitor.poll(run_dir)
    assert view.current_steps == 0 and view.loss.empty and view.message_key == "monitor.starting"


def test_loss_and_metric_series(run_dir: Path):
    losses = [2.0, 1.8, 1.9, 1.4, 1.1]
    append(run_dir, *(record(i + 1, loss=v, lr=1e-3 * (i + 1), grad_norm=0.5, throughput=900.0, epoch=0.1,
                             total_tokens=100 * i, **{"rewards/margins": 0.1 * i}) for i, v in enumerate(losses)),
           record(5, eval_loss=1.3, eval_runtime=0.5, eval_samples_per_second=80.0))
    view = RunMonitor().poll(run_dir)
    assert list(view.loss.columns) == ["step", "value", "series"]
    by_series = {name: list(group["value"]) for name, group in view.loss.groupby("series")}
    assert by_series["loss"] == losses and by_series["eval_loss"] == [1.3]
    assert by_series["smoothed"] == pytest.approx(smooth(losses))
    assert list(view.loss[view.loss.series == "eval_loss"]["step"]) == [5]
    assert set(view.metrics["series"]) == {"lr", "grad_norm", "throughput", "rewards/margins"}
    margins = view.metrics[view.metrics.series == "rewards/margins"]
    assert list(margins["step"]) == [1, 2, 3, 4, 5] and list(margins["value"]) == pytest.approx([0, .1, .2, .3, .4])


def test_finished_run_shows_results_and_latest_checkpoint(run_dir: Path):
    append(run_dir, record(9, loss=1.0), record(10, loss=0.9))
    for step in (5, 10):
        (run_dir / f"checkpoint-{step}").mkdir()
        (run_dir / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")  # written last: complete
    (run_dir / "all_results.json").write_text(json.dumps({"train_loss": 1.23456, "train_runtime": 75.2}))
    write_status(run_dir, "finished", exit_code=0)
    view = RunMonitor().poll(run_dir)
    assert (view.state, view.percentage, view.remaining) == ("finished", 100.0, "0:00:00")
    assert view.checkpoint == str(run_dir / "checkpoint-10") and view.results["train_loss"] == 1.23456
    text = status_markdown(view).replace("\\_", "_")  # Markdown escapes: shown as plain underscores
    assert "Finished" in text and str(run_dir) in text and "0:01:15" in text
    # The final loss is where the curve ends (0.9), not the trainer's mean over the run, which has its own name.
    assert "Final training loss (last logged step): 0.9 " in text and "Average training loss over the whole run: 1.235" in text


def test_log_tail_reads_as_words_without_dicts_bars_or_library_warnings():
    from studio.run_texts import readable_log

    log = "\n".join([
        "[05:23:54] INFO engine.data.pipeline: Training on 54 sequences (2988 tokens).",
        "/x/torch/utils/data.py:12: UserWarning: This DataLoader will create 2 worker processes.",
        "  warnings.warn(",
        "[05:23:55] WARNING transformers.trainer: some library notice",
        " 14%|█▍        | 1/7 [00:01<00:06,  1.09s/it]   {'loss': '8.819', 'grad_norm': '1.323', "
        "'learning_rate': '0.005', 'epoch': '0.1429', 'train_runtime': '1.096', 'train_tokens_per_second': '460.8'}",
        "100%|██████████| 7/7 [00:03<00:00,  2.72it/s]  {'train_runtime': '3.866', 'train_samples_per_second': "
        "'13.97', 'train_loss': '8.145', 'epoch': '1'}",
        "***** train metrics *****", "  epoch                    =        1.0",
        "  train_loss               =      8.145", "  train_samples_per_second =     13.968",
        "Traceback (most recent call last):", "    x = load()", "MemoryError",
    ])
    text = readable_log(log, "en")
    assert text.splitlines() == [
        "[05:23:54] Training on 54 sequences (2988 tokens).",
        "Step 1 of 7: Loss 8.819 · Gradient size 1.323 · Learning rate 0.005 · Epoch 0.1429",
        "Training done: Loss (training) 8.145 · Epoch 1",
        "Results:", "  Epoch: 1", "  Loss (training): 8.145",
        "Traceback (most recent call last):", "    x = load()", "MemoryError",
        "(2 warning(s) from the libraries hidden: they do not stop the run. The full text is in running_log.txt "
        "in the run folder.)",
    ]
    assert "'" not in readable_log(log, "ja").splitlines()[1] and "損失" in readable_log(log, "ja")


def test_numbers_metric_names_and_results_table_are_for_people():
    from studio.monitor import chart_frame, loss_frame, metric_choices
    from studio.run_texts import format_number, results_table

    assert [format_number(v) for v in (3.120000000000001, 0.63, 1e-05, 2.0, 12345, 0.123456)] == [
        "3.12", "0.63", "1e-05", "2", "12,345", "0.1235"]
    table = results_table({"predict_bleu-4": 12.345678, "predict_rouge-l": 20.0, "predict_runtime": 75.2,
                           "predict_samples_per_second": 3.1, "predict_steps_per_second": 0.4}, "zh")
    assert list(table.columns) == ["指标", "数值"]
    assert table.values.tolist() == [["BLEU-4（词语重合度）（预测）", "12.35"], ["ROUGE-L（最长共同序列）（预测）", "20"],
                                     ["用时（预测）", "0:01:15"]]
    frame = chart_frame(loss_frame([record(1, loss=2.0), record(2, loss=1.0, eval_loss=1.5)]), "ja")
    assert set(frame["series"]) == {"損失", "損失（平滑化）", "評価損失"}
    assert metric_choices(["lr", "rewards/margins"], "de") == [("Lernrate", "lr"), ("rewards/margins", "rewards/margins")]


def test_a_dead_process_reads_as_failed_with_the_log_tail(run_dir: Path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    write_status(run_dir, "running", pid=proc.pid, pid_start_time="1")
    (run_dir / "running_log.txt").write_text("".join(f"line {i}\n" for i in range(100)) + "MemoryError\n")
    append(run_dir, record(3, loss=1.0))
    view = RunMonitor().poll(run_dir)
    assert view.state == "failed" and "MemoryError" in view.error
    assert view.log_tail.splitlines()[-1] == "MemoryError" and len(view.log_tail.splitlines()) == 40
    assert view.message_key == "monitor.failed" and view.current_steps == 3
    text = status_markdown(view)
    assert "Failed" in text and "MemoryError" in text and "Step 3 of 10" in text
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


@pytest.mark.parametrize(("checkpoint", "key"), [(True, "monitor.aborted_checkpoint"), (False, "monitor.aborted")])
def test_aborted_run_names_its_checkpoint(run_dir: Path, checkpoint: bool, key: str):
    (run_dir / "checkpoint-7").mkdir()
    (run_dir / "checkpoint-7" / "trainer_state.json").write_text("{}")
    write_status(run_dir, "aborted", exit_code=0, checkpoint=str(run_dir / "checkpoint-7") if checkpoint else None)
    view = RunMonitor().poll(run_dir)
    assert view.state == "aborted" and view.message_key == key
    assert view.checkpoint == (str(run_dir / "checkpoint-7") if checkpoint else None)
    if checkpoint:
        assert "checkpoint-7" in status_markdown(view)


def test_folders_without_a_run(tmp_path: Path):
    monitor = RunMonitor()
    assert monitor.poll(None).message_key == "monitor.no_run"
    assert monitor.poll(tmp_path / "missing").message_key == "monitor.no_run"
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.yaml").write_text("stage: sft\n")
    view = monitor.poll(tmp_path / "fresh")
    assert (view.state, view.message_key) == ("new", "monitor.new")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "adapter_model.safetensors").write_bytes(b"")
    assert monitor.poll(tmp_path / "old").message_key == "monitor.unknown"


def test_texts_exist_for_every_state_and_message():
    english = load_locale("en")
    keys = ["monitor.no_run", "monitor.new", "monitor.starting", "monitor.running", "monitor.finished",
            "monitor.failed", "monitor.aborted", "monitor.aborted_checkpoint", "monitor.unknown", "monitor.progress",
            "monitor.progress_none", "monitor.results", "monitor.see_log"]
    keys += [f"monitor.state.{s}" for s in ("new", "running", "finished", "failed", "aborted", "unknown")]
    assert [k for k in keys if k not in english] == []
    assert progress_text(RunView()) == english["monitor.progress_none"]
    view = RunView(state="running", current_steps=3, total_steps=12, percentage=25.0, elapsed="0:00:09",
                   remaining="0:00:27", message_key="monitor.running",
                   message_params={"current": 3, "total": 12, "percentage": "25.0"})
    assert progress_text(view) == "Step 3 of 12 (25.0%) · 0:00:09 elapsed · about 0:00:27 left"
    assert "{" not in status_markdown(view) and "Running" in status_markdown(view)
    assert "{" not in status_markdown(RunView())


def test_polling_five_thousand_lines_stays_incremental(run_dir: Path, reads: list[int]):
    append(run_dir, *(record(i, total=5000, loss=2.0 + (i % 7) / 10, lr=1e-4, grad_norm=1.0) for i in range(1, 5001)))
    monitor = RunMonitor()
    start = time.perf_counter()
    view = monitor.poll(run_dir)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(10):
        again = monitor.poll(run_dir)
    idle = (time.perf_counter() - start) / 10
    append(run_dir, record(5001, total=5001, loss=1.0))
    start = time.perf_counter()
    grown = monitor.poll(run_dir)
    one_more = time.perf_counter() - start
    print(f"\n5,000 lines: first poll {first * 1000:.1f} ms, idle poll {idle * 1000:.2f} ms, "
          f"one new line {one_more * 1000:.1f} ms")
    assert view.current_steps == 5000 and len(view.loss) == 10000 and again.current_steps == 5000
    assert grown.current_steps == 5001 and len(reads) == 2 and reads[1] > 0


def test_long_curves_are_thinned_for_the_chart_keeping_spikes_and_ends():
    from studio.monitor import loss_frame, thin_frame

    records = [record(i, total=5000, loss=2.0 - i / 5000) for i in range(1, 5001)]
    records[2345]["loss"] = 40.0  # one spike
    full = loss_frame(records)
    thin = thin_frame(full, max_points=400)
    sizes = thin.groupby("series").size()
    assert list(thin.columns) == ["step", "value", "series"] and set(sizes.index) == {"loss", "smoothed"}
    assert sizes.max() <= 402 and sizes.min() > 100
    loss = thin[thin.series == "loss"]
    assert 40.0 in set(loss["value"]) and loss["step"].is_monotonic_increasing
    assert loss["step"].iloc[0] == 1 and loss["step"].iloc[-1] == 5000
    short = loss_frame(records[:50])
    assert thin_frame(short, max_points=400) is short


def test_a_tick_sends_charts_and_log_only_when_they_changed(run_dir: Path):
    import gradio as gr

    from studio.tabs.monitor import poll

    skip = gr.skip()
    append(run_dir, record(1, loss=2.0, lr=1e-3), record(2, loss=1.5, lr=1e-3))
    # The first eight outputs (a ninth, when present, tells other tabs that a job ended).
    status, progress, loss, metrics, picker, log, timer, session = poll(str(run_dir), "en", "lr", None)[:8]
    assert "Step 2 of 10" in progress and list(loss["step"]) == [1, 2, 1, 2] and list(metrics["value"]) == [1e-3] * 2
    assert picker["choices"] == [("Learning rate", "lr")] and timer.active
    again = poll(str(run_dir), "en", "lr", session)
    assert again[2:6] == (skip, skip, skip, skip) and again[7] is session and "Step 2 of 10" in again[1]
    append(run_dir, record(3, loss=1.2, lr=2e-3, grad_norm=0.5))
    grown = poll(str(run_dir), "en", "lr", session)
    assert list(grown[2][grown[2].series == "Loss"]["value"]) == [2.0, 1.5, 1.2]
    assert list(grown[3]["value"]) == [1e-3, 1e-3, 2e-3]
    assert grown[4]["choices"] == [("Learning rate", "lr"), ("Gradient size", "grad_norm")]
    picked = poll(str(run_dir), "en", "grad_norm", session)  # the user picked another metric
    assert picked[2] == skip and list(picked[3]["value"]) == [0.5] and picked[4]["value"] == "grad_norm"
    fresh_page = poll(str(run_dir), "en", "lr", None)  # a reload starts a new session: everything is sent
    assert len(fresh_page[2]) == 6 and fresh_page[7] is not session


def test_a_language_switch_resends_charts_picker_and_log_in_that_language(run_dir: Path):
    import gradio as gr

    from studio.tabs.monitor import poll

    append(run_dir, record(1, loss=2.0, lr=1e-3), record(2, loss=1.5, lr=1e-3))
    (run_dir / "running_log.txt").write_text(
        " 50%|█████     | 1/2 [00:01<00:01,  1.0s/it]   {'loss': '2.0', 'learning_rate': '0.001', 'epoch': '0.5'}\n",
        encoding="utf-8")
    english = poll(str(run_dir), "en", "lr", None)
    assert set(english[2]["series"]) == {"Loss", "Loss (smoothed)"} and set(english[3]["series"]) == {"Learning rate"}
    assert "{'loss'" not in english[5] and "Learning rate" in english[5]
    session = english[7]
    assert poll(str(run_dir), "en", "lr", session)[2:6] == (gr.skip(),) * 4
    german = poll(str(run_dir), "de", "lr", session)  # same run, same data: only the language changed
    assert "Loss" not in set(german[3]["series"]) and german[4]["choices"][0][1] == "lr"
    assert german[4]["choices"][0][0] != "Learning rate" and german[5] != english[5]


def test_a_finished_run_shows_a_full_progress_bar():
    from types import SimpleNamespace

    from studio.tabs.monitor import progress_html

    # logging_steps=5 with 6 steps: the last logged step is 5, yet the run did all 6.
    view = SimpleNamespace(state="finished", total_steps=6, current_steps=5, percentage=83.3, elapsed="0:00:11",
                           remaining="0:00:02")
    assert "Step 6 of 6 (100%)" in progress_html(view, "en") and "width:100.0%" in progress_html(view, "en")
    running = SimpleNamespace(**{**vars(view), "state": "running"})
    assert "Step 5 of 6 (83%)" in progress_html(running, "en")
