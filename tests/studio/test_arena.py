"""The arena without a browser: the vote file and its summary, what each side can load, the servers' slots (two at
once, the single chat unloaded, the same model twice refused, the demo's room), and both replies streaming at once."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from engine.errors import StudioError
from engine.runfolder import process_start_time
from studio import arena, chat_server, janitor, supervisor
from studio.tabs import arena as arena_tab
from tests.studio.test_demo_mode import TOKEN_A, demo  # noqa: F401 - the fixture
from tests.studio.test_supervisor import fake_api  # noqa: F401 - the fixture

CONVERSATION = {"a": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                "b": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]}


def vote(path: Path, a: str, b: str, verdict: str, **extra) -> dict:
    return arena.record_vote(path, models={"a": a, "b": b}, vote=verdict, blind=True, swapped=False,
                             conversation=CONVERSATION, **extra)


def test_votes_are_appended_and_summed_up_per_pair_whichever_side_each_model_sat_on(tmp_path: Path):
    path = tmp_path / "arena" / "votes.jsonl"
    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    first = vote(path, "base", "run", "b", system="Be brief.", now=now)
    vote(path, "run", "base", "a")  # the run wins again, now sitting on side A
    vote(path, "base", "run", "a")
    vote(path, "run", "base", "tie")
    vote(path, "base", "run", "both_bad")
    vote(path, "base", "export", "a")
    with open(path, "a", encoding="utf-8") as out:  # a line cut short by a crash, and one that is no vote
        out.write('{"models": {"a": "x"\n{"models": {"a": "x", "b": "y"}, "vote": "maybe"}\n')

    votes = arena.read_votes(path)
    assert len(votes) == 6 and votes[0] == first
    assert first["time"] == "2026-12-07T12:00:00+00:00" and first["system"] == "Be brief."
    assert first["conversation"] == CONVERSATION and first["blind"] is True and first["swapped"] is False
    rows = arena.summarise(votes)
    assert [(r["model_1"], r["model_2"]) for r in rows] == [("base", "run"), ("base", "export")]
    pair = rows[0]
    assert (pair["wins_1"], pair["wins_2"], pair["ties"], pair["both_bad"], pair["count"]) == (1, 2, 1, 1, 5)
    assert pair["win_rate_1"] == pytest.approx((1 + 1) / 5)  # a tie and "both bad" are half a win each
    assert rows[1]["model_1"] == "base" and rows[1]["win_rate_1"] == 1.0  # "base" < "export": base is model 1

    headers, table = arena.summary_rows(votes, "en")
    assert headers == ["Model 1", "Model 2", "Model 1 wins", "Model 2 wins", "Ties", "Both bad", "Model 1 win rate"]
    assert table[0] == ["base", "run", 1, 2, 1, 1, "40% of 5 votes"]
    assert arena.read_votes(tmp_path / "missing.jsonl") == []
    assert arena.short_name("/models/tiny + /home/saves/tiny/lora/run1/") == "tiny + run1"
    with pytest.raises(ValueError, match="unknown vote"):
        vote(path, "base", "run", "maybe")


def test_blind_mode_shuffles_the_sides_and_open_mode_never_does():
    rng = random.Random(0)
    assert {arena.pick_swapped(True, rng) for _ in range(50)} == {True, False}
    assert {arena.pick_swapped(False, rng) for _ in range(50)} == {False}


def finished_run(saves: Path, parts: str, config: dict, weights: str, task: str = "train") -> Path:
    folder = saves / parts
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (folder / weights).write_bytes(b"weights")
    (folder / "status.json").write_text(json.dumps({"state": "finished", "task": task}), encoding="utf-8")
    return folder


TOP = {"model_name_or_path": "demo", "finetuning_type": "lora", "template": "chatml", "infer_backend": "huggingface",
       "infer_dtype": "auto", "quantization_bit": None}


def test_each_side_loads_the_top_bar_model_a_trained_run_or_an_export(studio_home: Path):
    saves = studio_home / "saves"
    lora = finished_run(saves, "demo/lora/run1", {"model_name_or_path": "demo", "finetuning_type": "lora",
                                                  "template": "chatml"}, "adapter_model.safetensors")
    full = finished_run(saves, "demo/full/run2", {"model_name_or_path": "demo", "finetuning_type": "full",
                                                  "template": "chatml"}, "model.safetensors")
    export = finished_run(saves, "demo/lora/export1", {"model_name_or_path": "demo", "finetuning_type": "lora",
                                                       "adapter_name_or_path": str(lora)}, "model.safetensors",
                          task="export")
    failed = finished_run(saves, "demo/lora/broken", {"model_name_or_path": "demo"}, "adapter_model.safetensors")
    (failed / "status.json").write_text(json.dumps({"state": "failed", "task": "train"}), encoding="utf-8")

    choices = arena.model_choices("demo", "en", saves)
    labels = dict((value, label) for label, value in choices)
    assert choices[0] == ("Top bar model: demo", arena.BASE)
    assert labels[str(lora)] == "Trained run: demo/lora/run1" and labels[str(full)] == "Trained run: demo/full/run2"
    assert labels[str(export)] == "Exported model: demo/lora/export1"
    assert str(failed) not in labels  # a run that did not finish has nothing to compare

    assert arena.choice_config(arena.BASE, TOP, choices) == TOP
    assert arena.choice_config(str(lora), TOP, choices) == {**TOP, "adapter_name_or_path": str(lora)}
    assert arena.choice_config(str(full), TOP, choices) == {**TOP, "model_name_or_path": str(full),
                                                            "finetuning_type": "full", "adapter_name_or_path": None}
    exported = arena.choice_config(str(export), TOP, choices)
    assert exported["model_name_or_path"] == str(export) and exported["adapter_name_or_path"] is None
    assert exported["template"] is None  # the exported tokenizer carries its own chat template
    for choice, key in (("/etc", "arena_unknown_choice"), (None, "arena_no_choice")):
        with pytest.raises(StudioError) as err:
            arena.choice_config(choice, TOP, choices)
        assert err.value.key == key


def alive(slot: str) -> bool:
    return chat_server.find_server(slot) is not None


def test_the_arena_loads_two_slots_unloads_the_single_chat_and_refuses_the_same_model_twice(
        studio_home: Path, tiny_model_dir: Path, fake_api: list[int]):  # noqa: F811 - the fixture
    base = {"model_name_or_path": str(tiny_model_dir), "template": "chatml"}
    chat_server.start_server(base, timeout=30)
    states = chat_server.start_servers({"arena_a": base, "arena_b": {**base, "template": "default"}}, timeout=30)
    assert not alive("main") and alive("arena_a") and alive("arena_b")  # one machine, two models at most
    assert states["arena_a"]["identity"] == str(tiny_model_dir)
    assert (studio_home / "saves/.studio/chat/arena_b/server.json").is_file()
    # The demo counts every slot of every workspace (here the test folder stands in for one workspace).
    assert [p.parent.name for p in chat_server.live_servers(studio_home.parent)
            if studio_home in p.parents] == ["arena_a", "arena_b"]

    with pytest.raises(StudioError) as err:
        chat_server.start_servers({"arena_a": base, "arena_b": dict(base)}, timeout=30)
    assert err.value.key == "arena_same_model" and str(tiny_model_dir) in err.value.message()
    assert alive("arena_a") and alive("arena_b") and len(fake_api) == 3  # refused before anything was touched

    chat_server.start_server(base, timeout=30)  # back to the single chat: the arena's models go
    assert alive("main") and not alive("arena_a") and not alive("arena_b")
    assert chat_server.stop_servers() == 1
    assert not any(supervisor.alive(pid, None) for pid in fake_api)


def test_the_demo_refuses_an_arena_it_has_no_room_for(demo, fake_api: list[int]):  # noqa: F811 - the fixtures
    settings, visit = demo
    visit(TOKEN_A)
    with pytest.raises(StudioError) as err:  # the demo holds one chat model in all: the arena needs two
        chat_server.start_servers({"arena_a": {"model_name_or_path": "demo"},
                                   "arena_b": {"model_name_or_path": "demo", "template": "default"}}, timeout=30)
    assert err.value.key == "arena_demo_busy" and err.value.params == {"limit": 1, "needed": 2}
    assert fake_api == []


def test_both_replies_stream_at_once_and_one_failure_leaves_the_other_going(monkeypatch: pytest.MonkeyPatch):
    both_started = threading.Barrier(2, timeout=5)  # each side waits for the other: only concurrent streams pass

    def stream_reply(state: dict, messages: list, **sampling) -> object:
        both_started.wait()
        if state["name"] == "bad":
            raise StudioError("chat_request_failed", detail="boom")
        for word in ("one", "one two"):
            time.sleep(0.01)
            yield word

    monkeypatch.setattr(chat_server, "stream_reply", stream_reply)
    updates = list(chat_server.stream_replies({"a": {"name": "good"}, "b": {"name": "bad"}}, {"a": [], "b": []},
                                              max_tokens=8))
    assert [text for side, text in updates if side == "a"] == ["one", "one two"]
    errors = [item for side, item in updates if side == "b"]
    assert len(errors) == 1 and errors[0].key == "chat_request_failed"


def test_a_vote_is_saved_once_per_round_and_reveals_the_blind_sides(studio_home: Path):
    round_ = {**arena_tab.new_round(True), "swapped": True, "models": {"a": "run", "b": "base"}}
    assert arena_tab.side_slots(round_) == {"a": "arena_b", "b": "arena_a"}
    assert "hidden" in arena_tab.sides_text(round_, "en")
    _, _, status, _ = arena_tab.vote("a", round_, "", "en")
    assert status == "❌ Send a message and wait for both answers before voting."
    round_ = {**round_, **CONVERSATION}
    voted, sides, status, summary = arena_tab.vote("a", round_, "Be brief.", "en")
    assert status.startswith("✅ Vote saved: 👈 A is better")
    assert "Revealed" in sides and "run" in sides and "base" in sides
    assert summary.values.tolist() == [["base", "run", 0, 1, 0, 0, "0% of 1 votes"]]
    saved = arena.read_votes(arena.votes_path())
    assert len(saved) == 1 and saved[0]["models"] == {"a": "run", "b": "base"} and saved[0]["swapped"] is True
    assert arena_tab.vote("b", voted, "", "en")[2].startswith("❌ This round already has its vote")
    assert len(arena.read_votes(arena.votes_path())) == 1


def test_one_message_goes_to_both_sides_and_a_failure_keeps_it_in_the_box(monkeypatch: pytest.MonkeyPatch):
    servers = {"arena_a": {"identity": "base"}, "arena_b": {"identity": "base + run"}}
    monkeypatch.setattr(arena_tab, "find_server", lambda slot: servers[slot])
    asked = []

    def stream_replies(states: dict, conversations: dict, **sampling) -> object:
        asked.append((states, conversations, sampling))
        for side in ("a", "b"):
            yield side, f"{states[side]['identity']} says hi"

    monkeypatch.setattr(arena_tab, "stream_replies", stream_replies)
    settings = ("Be brief.", 32, 0.7, 0.9, True, True)
    *_, (box, round_, shown_a, shown_b, sides, status) = arena_tab.send("<b>hi</b>", None, [], [], *settings, False,
                                                                         "en")
    assert box == "" and status.startswith("Both have answered")
    assert round_["models"] == {"a": "base", "b": "base + run"}  # blind off: named from the start, never swapped
    assert sides == "**Model A** is base · **Model B** is base + run"
    states, conversations, sampling = asked[0]
    assert conversations["a"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<b>hi</b>"}]
    assert sampling == {"max_tokens": 32, "top_p": 0.7, "temperature": 0.9}
    assert shown_a[0]["content"] == "&lt;b&gt;hi&lt;/b&gt;" and shown_b[1]["content"] == "base + run says hi"
    assert round_["b"][-1] == {"role": "assistant", "content": "base + run says hi"}

    def failing(states: dict, conversations: dict, **sampling) -> object:
        yield "a", "half an answer"
        yield "b", StudioError("chat_request_failed", detail="boom")

    monkeypatch.setattr(arena_tab, "stream_replies", failing)
    *_, (box, kept, shown_a2, shown_b2, _, status) = arena_tab.send("again", round_, shown_a, shown_b, *settings,
                                                                    False, "en")
    assert box == "again" and kept == round_ and shown_a2 == shown_a and shown_b2 == shown_b  # nothing half-done
    assert status.startswith("❌") and "boom" in status

    servers["arena_b"] = None
    *_, (_, _, _, _, _, status) = arena_tab.send("hi", None, [], [], *settings, False, "en")
    assert status == "❌ Load both models first (button **Load both**)."


def test_the_demo_unloads_an_idle_visitors_arena_models_too(demo):  # noqa: F811 - the fixture
    settings, visit = demo
    home = visit(TOKEN_A)
    (home / ".last_seen").write_text(str(int(time.time() - 45 * 60)), encoding="utf-8")  # idle past 30 minutes
    sleepers = []
    for slot in chat_server.ARENA_SLOTS:
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        sleepers.append(sleeper)
        state = home / "saves" / ".studio" / "chat" / slot / "server.json"
        state.parent.mkdir(parents=True)
        state.write_text(json.dumps({"pid": sleeper.pid, "pid_start_time": process_start_time(sleeper.pid),
                                     "url": "http://127.0.0.1:9"}), encoding="utf-8")
    try:
        assert len(chat_server.live_servers(home.parent)) == 2  # both count against the demo's chat models
        assert janitor.clean_idle_workspaces(settings) == []  # the workspace stays (idle for less than 2 hours)
        for sleeper in sleepers:
            sleeper.wait(timeout=20)
        assert chat_server.live_servers(home.parent) == [] and home.exists()
    finally:
        for sleeper in sleepers:
            if sleeper.poll() is None:
                os.killpg(sleeper.pid, 9)
