"""Sweeps: spec parsing against the engine's fields, expansion and naming, the size limit, queueing through the
queue's contract, and the comparison of a sweep's runs from their folders."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import StudioError
from engine.runfolder import read_status, write_status
from studio.markup import md_error
from studio.sweeps import (
    SWEEP_FILE,
    SWEEP_MAX_RUNS,
    SweepLineError,
    check_size,
    compare_runs,
    comparison_table,
    count_runs,
    expand_sweep,
    find_sweeps,
    format_value,
    parse_sweep,
    queue_sweep,
    read_sweep_record,
    sweep_chart,
    sweep_limit,
)


def test_a_good_spec_gives_typed_values_per_setting():
    spec = parse_sweep("# try three rates\nlearning_rate: 1e-4, 5e-5, 1e-5\n\nlora_rank: 8, 16\n"
                       "num_train_epochs = 1, 2.5\nmax_seq_length: 64")  # `=` works too; old names are mapped
    assert spec == {"learning_rate": [1e-4, 5e-5, 1e-5], "lora_rank": [8, 16], "num_train_epochs": [1.0, 2.5],
                    "cutoff_len": [64]}
    assert isinstance(spec["lora_rank"][0], int) and isinstance(spec["num_train_epochs"][0], float)
    assert count_runs(spec) == 12
    assert parse_sweep("lora_rank: 8, 8, 16") == {"lora_rank": [8, 16]}  # a value typed twice is one run
    assert parse_sweep("  \n# nothing\n") == {}


@pytest.mark.parametrize(("text", "line", "inner", "words"), [
    ("learning_rate: 1e-4\nlerning_rat: 1e-3", 2, "sweep_unknown_key", ["line 2", "lerning_rat"]),
    ("lora_rank: 8, 0", 1, "too_small", ["line 1", "lora_rank", "at least 1"]),
    ("lora_dropout: 0.1, 1.5", 1, "too_large", ["at most 1"]),
    ("learning_rate: 1e-4, fast", 1, "wrong_type", ["fast"]),
    ("lora_rank: 8, 16.5", 1, "wrong_type", ["16.5"]),
    ("learning_rate: nan", 1, "sweep_not_a_number", ["nan"]),
    ("stage: 1, 2", 1, "sweep_not_numeric", ["stage"]),
    ("lora_rank 8 16", 1, "sweep_no_colon", ["line 1"]),
    ("lora_rank:", 1, "sweep_no_values", ["lora_rank"]),
    ("lora_rank: 8\nlora_rank: 16", 2, "sweep_key_twice", ["lora_rank"]),
])
def test_a_bad_line_is_refused_naming_the_line(text: str, line: int, inner: str, words: list[str]):
    with pytest.raises(SweepLineError) as info:
        parse_sweep(text)
    err = info.value
    assert err.key == "sweep_bad_line" and err.params["line"] == line and err.problems[0][0] == inner
    message = err.message("en")
    assert all(word in message for word in words), message
    assert "error." not in message  # every key has its text
    assert "error." not in err.message("ja") and str(line) in err.message("ja")


def test_a_bad_line_is_escaped_where_it_becomes_markdown():
    with pytest.raises(SweepLineError) as info:
        parse_sweep("lora_rank: <img src=x onerror=alert(1)>")
    shown = md_error(info.value, "en")
    assert "<img" not in shown and "&lt;img" in shown
    assert "LoRA" in shown  # the studio names the setting by its label


def test_expansion_is_the_cartesian_product_with_readable_names():
    base = {"learning_rate": 1e-3, "lora_rank": 4, "stage": "sft", "output_dir": "x"}
    spec = parse_sweep("learning_rate: 1e-4, 5e-5, 1e-5\nlora_rank: 8, 16")
    runs = expand_sweep(base, spec)
    assert [suffix for suffix, _ in runs] == ["lr1e-4-r8", "lr1e-4-r16", "lr5e-5-r8", "lr5e-5-r16", "lr1e-5-r8",
                                               "lr1e-5-r16"]
    assert runs[3][1] == {**base, "learning_rate": 5e-5, "lora_rank": 16}
    assert base["lora_rank"] == 4  # the base config is not changed
    assert expand_sweep(base, {"num_train_epochs": [3.0], "lora_dropout": [0.05]})[0][0] == "ep3-do0.05"
    assert expand_sweep(base, {"seed": [1, 2]})[1][0] == "seed2"  # settings without a short name keep their key
    assert [format_value(v) for v in (1e-4, 2.5e-7, 0.001, 0.5, 3.0, 8, 1e7)] == [
        "1e-4", "2.5e-7", "0.001", "0.5", "3", "8", "1e7"]


def test_a_sweep_of_500_is_refused_before_anything_runs(studio_home: Path):
    spec = parse_sweep("learning_rate: " + ", ".join(f"{i}e-5" for i in range(1, 6)) + "\n"
                       "lora_rank: " + ", ".join(str(r) for r in range(1, 11)) + "\n"
                       "num_train_epochs: " + ", ".join(str(e) for e in range(1, 11)))
    assert count_runs(spec) == 500
    with pytest.raises(StudioError) as info:
        expand_sweep({}, spec)
    assert info.value.key == "sweep_too_many"
    assert "500" in info.value.message("en") and str(SWEEP_MAX_RUNS) in info.value.message("en")
    calls: list[Any] = []
    run_dir = studio_home / "saves" / "tiny" / "lora" / "big"
    with pytest.raises(StudioError):
        queue_sweep({}, run_dir, spec, enqueue=lambda *a, **k: calls.append(a))
    assert calls == [] and not (studio_home / "saves" / "tiny").exists()
    with pytest.raises(StudioError) as info:
        check_size({}, 32)
    assert info.value.key == "sweep_empty"


def test_a_demo_allows_only_the_visitors_remaining_runs():
    assert sweep_limit() == SWEEP_MAX_RUNS
    assert sweep_limit(2) == 2 and sweep_limit(-1) == 0 and sweep_limit(100) == SWEEP_MAX_RUNS
    with pytest.raises(StudioError) as info:
        check_size({"lora_rank": [8, 16, 32]}, sweep_limit(2), demo=True)
    assert info.value.key == "sweep_too_many_demo" and "3" in info.value.message("en")
    assert check_size({"lora_rank": [8, 16]}, sweep_limit(2), demo=True) == 2


class FakeQueue:
    """`studio.queue.enqueue_run`'s contract: records each call; refuses the run folders named in `refuse`."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.calls: list[tuple[dict[str, Any], Path, dict[str, Any]]] = []
        self.refuse = refuse

    def __call__(self, config: dict[str, Any], run_dir: str | Path, *, kind: str = "train",
                 devices: list[int] | None = None, lang: str = "en", **more: Any) -> dict[str, Any]:
        if Path(run_dir).name in self.refuse:
            raise StudioError("demo_visitor_busy", limit=1)
        self.calls.append((config, Path(run_dir), {"kind": kind, "devices": devices, "lang": lang, **more}))
        return {"id": str(len(self.calls)), "run_dir": str(run_dir), "state": "queued"}


def test_each_combination_is_queued_with_its_sweep_record(studio_home: Path):
    run_dir = studio_home / "saves" / "tiny" / "lora" / "try"
    spec = parse_sweep("learning_rate: 1e-4, 5e-5\nlora_rank: 8")
    queue = FakeQueue()
    queued = queue_sweep({"learning_rate": 1e-3, "output_dir": str(run_dir)}, run_dir, spec, enqueue=queue, lang="de")
    assert [p.name for p in queued] == ["try-lr1e-4-r8", "try-lr5e-5-r8"]
    assert [(c[1], c[0]["output_dir"], c[0]["learning_rate"], c[2]) for c in queue.calls] == [
        (queued[0], str(queued[0]), 1e-4, {"kind": "train", "devices": None, "lang": "de"}),
        (queued[1], str(queued[1]), 5e-5, {"kind": "train", "devices": None, "lang": "de"})]
    assert read_sweep_record(queued[1]) == {"sweep": "try", "values": {"learning_rate": 5e-5, "lora_rank": 8}}
    assert find_sweeps(studio_home / "saves") == {"try": queued}  # found again from the files after a reload
    assert not run_dir.exists()  # the sweep's name is no run of its own


def test_the_runs_go_to_the_devices_and_environment_the_form_chose(studio_home: Path):
    run_dir = studio_home / "saves" / "tiny" / "lora" / "gpus"
    queue = FakeQueue()
    queue_sweep({}, run_dir, {"lora_rank": [8, 16]}, enqueue=queue, devices=[0, 1],
                env={"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"})
    assert [c[2] for c in queue.calls] == [{"kind": "train", "devices": [0, 1], "lang": "en",
                                            "env": {"FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "2"}}] * 2


def test_a_refused_run_name_stops_the_sweep_before_any_run_is_queued(studio_home: Path):
    run_dir = studio_home / "saves" / "tiny" / "lora" / "again"
    queue = FakeQueue()

    def check_new(config: dict[str, Any], folder: Path) -> None:
        if folder.name.endswith("r16"):
            raise StudioError("run_name_taken", name=folder.name)

    with pytest.raises(StudioError):
        queue_sweep({}, run_dir, {"lora_rank": [8, 16]}, enqueue=queue, check_new=check_new)
    assert queue.calls == [] and find_sweeps(studio_home / "saves") == {}


def test_a_run_the_queue_refuses_leaves_no_record(studio_home: Path):
    run_dir = studio_home / "saves" / "tiny" / "lora" / "busy"
    queue = FakeQueue(refuse=("busy-r16",))
    with pytest.raises(StudioError):
        queue_sweep({}, run_dir, {"lora_rank": [8, 16]}, enqueue=queue)
    assert [c[1].name for c in queue.calls] == ["busy-r8"]
    assert [p.name for p in find_sweeps(studio_home / "saves")["busy"]] == ["busy-r8"]
    assert not (run_dir.parent / "busy-r16").exists()


def make_sweep_run(saves: Path, name: str, values: dict[str, Any], *, losses: tuple[float, ...] = (),
                   evals: tuple[float, ...] = (), state: str | None = "finished",
                   results: dict[str, Any] | None = None, throughput: float | None = None) -> Path:
    """A run folder as a sweep's finished (or failed, or queued) run leaves it."""
    run_dir = saves / "tiny" / "lora" / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("stage: sft\n")
    (run_dir / SWEEP_FILE).write_text(json.dumps({"sweep": "s1", "values": values}))
    lines = [{"current_steps": i, "total_steps": len(losses), "loss": loss, "elapsed_time": f"0:00:{i * 10:02d}",
              **({"throughput": throughput * i} if throughput else {})} for i, loss in enumerate(losses, start=1)]
    lines += [{"current_steps": i, "eval_loss": value} for i, value in enumerate(evals, start=1)]
    if lines:
        (run_dir / "trainer_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if results is not None:
        (run_dir / "all_results.json").write_text(json.dumps(results))
    if state:
        write_status(run_dir, state, pid=1, exit_code=0)
    return run_dir


def test_the_comparison_reads_each_folder_and_marks_the_best(studio_home: Path):
    saves = studio_home / "saves"
    a = make_sweep_run(saves, "s1-lr1e-4", {"learning_rate": 1e-4}, losses=(2.0, 1.0), evals=(1.5, 0.9),
                       results={"train_runtime": 75.2, "train_tokens_per_second": 1234.5, "eval_loss": 0.95})
    b = make_sweep_run(saves, "s1-lr5e-5", {"learning_rate": 5e-5}, losses=(2.0, 1.2), evals=(1.1, 0.7, 0.8),
                       throughput=100.0)
    c = make_sweep_run(saves, "s1-lr1e-5", {"learning_rate": 1e-5}, losses=(2.5,), state="failed")
    d = make_sweep_run(saves, "s1-lr1e-6", {"learning_rate": 1e-6}, state=None)  # still waits in the queue
    frame = compare_runs([a, b, c, d])
    rows = frame.set_index("name").to_dict("index")
    assert rows["s1-lr1e-4"]["final_loss"] == 1.0 and rows["s1-lr1e-4"]["final_eval_loss"] == 0.95
    assert rows["s1-lr1e-4"]["best_eval_loss"] == 0.9
    assert rows["s1-lr1e-4"]["runtime"] == 75.2 and rows["s1-lr1e-4"]["tokens_per_second"] == 1234.5
    assert rows["s1-lr5e-5"]["best_eval_loss"] == 0.7 and rows["s1-lr5e-5"]["final_eval_loss"] == 0.8
    assert rows["s1-lr5e-5"]["runtime"] == 20.0 and rows["s1-lr5e-5"]["tokens_per_second"] == 200.0  # from the log
    assert rows["s1-lr1e-5"]["state"] == "failed" and pd_isna(rows["s1-lr1e-5"]["best_eval_loss"])
    assert rows["s1-lr1e-6"]["state"] == "new" and pd_isna(rows["s1-lr1e-6"]["final_loss"])
    assert rows["s1-lr5e-5"]["values"] == "learning_rate=5e-5"
    assert frame["best"].tolist() == [False, True, False, False]  # the lowest best eval loss, not final

    table = comparison_table(frame, "de")
    assert list(table.columns)[:3] == ["Bester", "Lauf", "Werte"]
    assert table.iloc[1, 0] == "★" and table.iloc[0, 0] == ""
    assert table.iloc[0]["Dauer"] == "0:01:15" and table.iloc[2]["Zustand"] == "Fehlgeschlagen"

    chart = sweep_chart(frame, [a, b, c, d])
    assert set(chart["series"]) == {"s1-lr1e-4", "★ s1-lr5e-5", "s1-lr1e-5"}


def test_without_evaluation_the_lowest_final_loss_is_best(studio_home: Path):
    saves = studio_home / "saves"
    runs = [make_sweep_run(saves, "s1-r8", {"lora_rank": 8}, losses=(2.0, 1.4)),
            make_sweep_run(saves, "s1-r16", {"lora_rank": 16}, losses=(2.0, 1.3)),
            make_sweep_run(saves, "s1-r32", {"lora_rank": 32}, state="running")]
    assert compare_runs(runs)["best"].tolist() == [False, True, False]
    assert not compare_runs([runs[2]])["best"].any()  # nothing logged yet: no best


def pd_isna(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def test_the_sweep_line_counts_runs_and_says_why_not():
    from studio.tabs.train_runs import sweep_count_text

    assert sweep_count_text("learning_rate: 1e-4, 5e-5", "en") == "2 runs"
    assert sweep_count_text("lora_rank: 8", "en") == "1 run"
    assert sweep_count_text("", "en") == ""
    assert sweep_count_text("lora_rank: 8, 16\nlearning_rate: 1e-4, 5e-5", "ja") == "4 個の実行"
    refused = sweep_count_text("lora_rank: " + ", ".join(str(r) for r in range(1, 41)), "en")
    assert refused.startswith("❌") and "40" in refused and "32" in refused
    bad = sweep_count_text("lora_rank: 8\nfoo: 1", "en")
    assert bad.startswith("❌") and "line 2" in bad


def test_the_sweep_line_in_a_demo_counts_the_visitors_live_and_queued_runs(studio_home: Path,
                                                                             monkeypatch: pytest.MonkeyPatch):
    from studio import demo_mode
    from studio.demo_settings import DemoSettings
    from studio.tabs import train_runs

    monkeypatch.setattr(demo_mode, "active", lambda: DemoSettings(runs_per_visitor=3))
    monkeypatch.setattr("studio.workspace.saves_dir", lambda request=None: studio_home / "saves")
    monkeypatch.setattr("studio.queue.list_queue", lambda **kwargs: [{"id": "one"}])  # one queued run of theirs
    assert train_runs.sweep_count_text("lora_rank: 8, 16", "en") == "2 runs"
    refused = train_runs.sweep_count_text("lora_rank: 8, 16, 32", "en")
    assert refused.startswith("❌") and "demo" in refused and "2 more" in refused


@pytest.mark.slow
def test_a_real_sweep_of_two_runs_is_queued_trained_and_compared(studio_home: Path, tiny_model_dir: Path):
    from studio import queue
    from studio.config_builder import check_new_run
    from studio.runs import run_folder

    base = {"model_name_or_path": str(tiny_model_dir), "template": "chatml", "stage": "sft", "do_train": True,
            "dataset": "identity", "finetuning_type": "lora", "lora_rank": 4, "per_device_train_batch_size": 2,
            "logging_steps": 1, "save_steps": 1000, "learning_rate": 1e-3, "cutoff_len": 96, "seed": 3,
            "max_steps": 2}
    run_dir = run_folder("tiny", "lora", "real")
    queued = queue_sweep(base, run_dir, parse_sweep("learning_rate: 1e-3, 1e-4"), enqueue=queue.enqueue_run,
                         check_new=check_new_run)
    assert [p.name for p in queued] == ["real-lr0.001", "real-lr1e-4"]
    # Each run waits in the queue or has already been started by it (a studio thread may dispatch at any moment).
    waiting = {e["run_dir"] for e in queue.list_queue()}
    assert all(str(p) in waiting or read_status(p).get("state") for p in queued), waiting
    deadline = time.monotonic() + 240
    while not all(read_status(p).get("state") in ("finished", "failed", "aborted") for p in queued):
        assert time.monotonic() < deadline, [read_status(p) for p in queued]
        queue.dispatch()
        time.sleep(0.5)
    assert [read_status(p)["state"] for p in queued] == ["finished", "finished"]
    frame = compare_runs(find_sweeps(studio_home / "saves")["real"])
    assert frame["name"].tolist() == ["real-lr0.001", "real-lr1e-4"]
    assert frame["final_loss"].notna().all() and frame["runtime"].notna().all() and frame["best"].sum() == 1
    assert frame["values"].tolist() == ["learning_rate=0.001", "learning_rate=1e-4"]
