"""LLM-as-judge: reading scores from replies, the summary numbers, and the job end to end against real endpoints on
127.0.0.1 (a fixed-score test double in this file, and our own API server serving the tiny offline model)."""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.cli import main as cli_main
from engine.config import load_config
from engine.errors import ConfigError, DataError
from engine.eval.judge import check_judge_config, predictions_file, read_predictions
from engine.eval.judge_scores import (
    DEFAULT_RUBRIC,
    check_rubric,
    parse_verdict,
    render_prompt,
    summarize_scores,
    t_quantile,
)
from engine.runfolder import read_status

KEY = "sk-judge-secret-123"


# ---------------------------------------------------------------- reading a score

@pytest.mark.parametrize(("reply", "score"), [
    ("Score: 7\nReason: matches the reference.", 7),
    ("**Score:** 8/10\n**Reason:** clear", 8),
    ("score = 3", 3),
    ("Rating: [[6]]", 6),
    ("The score is 4 out of 10 because it misses a step.", 4),
    ('{"score": 9, "reason": "exact"}', 9),
    ("5", 5),
    ("7.5\nclose", 7.5),
    ("<think>A score: 2 seems harsh.</think>\nScore: 6\nReason: mostly right.", 6),
])
def test_scores_are_read_from_the_usual_reply_shapes(reply: str, score: float):
    verdict = parse_verdict(reply, 1, 10)
    assert verdict.error is None and verdict.score == score


@pytest.mark.parametrize(("reply", "why"), [
    ("", "empty"),
    (None, "empty"),
    ("A fine answer, well written.", "no score"),
    ("Score: 11\nReason: great", "outside the 1–10 scale"),
    ("Score: 0", "outside the 1–10 scale"),
    ("Score: 4/5", "not on the 1–10 scale"),
    ("<think>Score: 8 maybe", "empty"),
])
def test_an_unreadable_or_off_scale_reply_is_a_failure_with_its_reason_not_a_zero(reply: str | None, why: str):
    verdict = parse_verdict(reply, 1, 10)
    assert verdict.score is None
    assert why in verdict.error


def test_the_reason_is_the_judges_sentence():
    assert parse_verdict("Score: 2\nReason: it contradicts the reference.", 1, 10).reason == \
        "it contradicts the reference."
    assert parse_verdict("Score: 2 — wrong year", 1, 10).reason == "— wrong year"


def test_rubric_slots_are_filled_and_other_braces_stay():
    rubric = 'Q: {prompt}\nA: {predict}\nRef: {label}\nScale {min}-{max}. Answer as {"score": n}.'
    text = render_prompt(rubric, {"prompt": "p {label}", "predict": "x", "label": "y"}, 1, 5)
    assert text == 'Q: p {label}\nA: x\nRef: y\nScale 1-5. Answer as {"score": n}.'
    assert check_rubric(None) == DEFAULT_RUBRIC == check_rubric("  ")
    with pytest.raises(ConfigError) as info:
        check_rubric("Rate {prompt} please")
    assert info.value.key == "judge_rubric_no_predict" and "{predict}" in info.value.message()


# ---------------------------------------------------------------- the summary

def test_mean_spread_and_interval():
    scores = [2, 4, 4, 4, 5, 5, 7, 9]
    summary = summarize_scores(scores, failed=3)
    std = math.sqrt(32 / 7)  # sample standard deviation (n - 1)
    sem = std / math.sqrt(8)
    assert summary["mean"] == 5 and summary["count_scored"] == 8 and summary["count_failed"] == 3
    assert summary["std"] == pytest.approx(std, abs=1e-4) and summary["sem"] == pytest.approx(sem, abs=1e-4)
    assert summary["ci95"] == pytest.approx([5 - 2.365 * sem, 5 + 2.365 * sem], abs=1e-4)
    assert (summary["min"], summary["max"]) == (2, 9)
    assert t_quantile(1) == 12.706 and t_quantile(1000) == 1.96


def test_one_score_has_no_spread_and_none_has_no_mean():
    assert summarize_scores([6], 0) | {} == {"count_scored": 1, "count_failed": 0, "mean": 6, "std": None,
                                             "sem": None, "ci95": None, "min": 6, "max": 6}
    assert summarize_scores([], 4)["mean"] is None


# ---------------------------------------------------------------- inputs

def write_predictions(folder: Path, rows: list[dict[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "generated_predictions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_missing_or_empty_predictions_say_which_and_how_to_make_them(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        predictions_file(str(tmp_path))
    message = info.value.message()
    assert str(tmp_path / "generated_predictions.jsonl") in message
    assert "Evaluate & Predict" in message and "do_predict" in message
    with pytest.raises(ConfigError) as info:
        predictions_file(None)
    assert "judge_predictions" in info.value.message()
    (tmp_path / "generated_predictions.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_predictions(predictions_file(str(tmp_path)))
    assert info.value.key == "judge_no_rows"
    (tmp_path / "generated_predictions.jsonl").write_text('{"predict": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_predictions(tmp_path / "generated_predictions.jsonl")
    assert info.value.message().startswith("Line 2 of ")


def test_config_checks_name_what_is_missing(tmp_path: Path):
    write_predictions(tmp_path, [{"prompt": "p", "predict": "a", "label": "b"}])
    base = [f"judge_predictions={tmp_path}"]
    for extra, key in (([], "judge_no_endpoint"), (["judge_base_url=ftp://x"], "judge_bad_url"),
                       (["judge_base_url=http://u:pw@h/v1"], "judge_url_credentials"),
                       (["judge_base_url=http://h/v1"], "judge_no_model"),
                       (["judge_base_url=http://h/v1", "judge_model=m", "judge_scale_min=5", "judge_scale_max=5"],
                        "judge_bad_scale")):
        with pytest.raises(ConfigError) as info:
            check_judge_config(load_config(None, base + extra))
        assert info.value.key == key


# ---------------------------------------------------------------- a fixed-score endpoint (test double)

class FixedJudge(BaseHTTPRequestHandler):
    """Answers chat completions with `Score: <n>` where the prompt holds `answer <n>`, an unreadable reply for
    `answer ?`, and 401 without the right key; counts the completions it served."""

    served: list[str] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self._send(401, {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error"}})
        return False

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        if self._authorized():
            self._send(200, {"object": "list", "data": [{"id": "fixed", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self._authorized():
            return
        prompt = body["messages"][0]["content"]
        self.served.append(prompt)
        found = re.search(r"answer (\d+|\?)", prompt)
        reply = "I would rather not say." if found.group(1) == "?" else f"Score: {found.group(1)}\nReason: fixed."
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                      "finish_reason": "stop"}]})


@pytest.fixture()
def fixed_judge() -> Iterator[str]:
    FixedJudge.served = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FixedJudge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


SCORES = [2, 4, 4, 4, 5, 5, 7, 9]


def judge(*args: str) -> int:
    return cli_main(["judge", *args])


def test_fixed_scores_give_exact_numbers_and_the_key_is_never_written(tmp_path: Path, fixed_judge: str,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]):
    rows = [{"prompt": f"q{i}", "predict": f"answer {s}", "label": "ref"} for i, s in enumerate(SCORES)]
    rows.insert(3, {"prompt": "q?", "predict": "answer ?", "label": "ref"})
    predictions = write_predictions(tmp_path / "run", rows)
    monkeypatch.setenv("MY_JUDGE_KEY", KEY)
    out = tmp_path / "run" / "judged"
    assert judge(f"judge_predictions={predictions}", f"judge_base_url={fixed_judge}", "judge_model=fixed",
                 "judge_api_key_env=MY_JUDGE_KEY", "judge_concurrency=3", f"output_dir={out}") == 0
    summary = json.loads((out / "judge_results.json").read_text(encoding="utf-8"))
    assert summary["mean"] == 5 and summary["count_scored"] == 8 and summary["count_failed"] == 1
    assert summary["std"] == pytest.approx(math.sqrt(32 / 7), abs=1e-4)
    assert summary["model"] == "fixed" and summary["endpoint_host"] == fixed_judge.split("/")[2]
    assert summary["rubric"] == DEFAULT_RUBRIC and summary["complete"] is True
    lines = [json.loads(x) for x in (out / "judge_results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["index"] for r in lines] == list(range(9))
    failed = lines[3]
    assert failed["score"] is None and "no score" in failed["error"] and failed["reply"] == "I would rather not say."
    assert lines[0]["score"] == 2 and lines[0]["reason"] == "fixed." and lines[0]["label"] == "ref"
    status = read_status(out)
    assert status["state"] == "finished" and status["task"] == "judge"
    captured = capsys.readouterr()
    for path in out.iterdir():
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path.name
    assert KEY not in captured.out + captured.err
    assert yaml.safe_load((out / "config.yaml").read_text())["judge_api_key_env"] == "MY_JUDGE_KEY"

    # The same settings into the same folder again: only the row without a score is asked again.
    FixedJudge.served.clear()
    assert judge(f"judge_predictions={predictions}", f"judge_base_url={fixed_judge}", "judge_model=fixed",
                 "judge_api_key_env=MY_JUDGE_KEY", f"output_dir={out}") == 0
    assert len(FixedJudge.served) == 1 and "answer ?" in FixedJudge.served[0]
    # Other settings into that folder are refused rather than mixed in.
    assert judge(f"judge_predictions={predictions}", f"judge_base_url={fixed_judge}", "judge_model=fixed",
                 "judge_scale_max=5", "judge_api_key_env=MY_JUDGE_KEY", f"output_dir={out}") == 1
    assert "already holds" in capsys.readouterr().err


def test_a_wrong_key_fails_the_job_with_the_variable_to_check(tmp_path: Path, fixed_judge: str,
                                                              monkeypatch: pytest.MonkeyPatch):
    predictions = write_predictions(tmp_path / "run", [{"prompt": "q", "predict": "answer 3", "label": "r"}])
    monkeypatch.setenv("JUDGE_API_KEY", "sk-wrong")
    assert judge(f"judge_predictions={tmp_path / 'run'}", f"judge_base_url={fixed_judge}", "judge_model=fixed") == 1
    run = next(p for p in predictions.parent.iterdir() if p.name.startswith("judge_"))
    status = read_status(run)
    assert status["state"] == "failed" and status["task"] == "judge"
    assert "401" in status["error"] and "JUDGE_API_KEY" in status["error"] and "sk-wrong" not in status["error"]
    assert not FixedJudge.served


def test_an_endpoint_that_does_not_answer_names_the_url(tmp_path: Path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    predictions = write_predictions(tmp_path / "run", [{"prompt": "q", "predict": "a", "label": "r"}])
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{port}/v1"
    assert judge(f"judge_predictions={predictions}", f"judge_base_url={url}", "judge_model=m",
                 f"output_dir={out}") == 1
    status = read_status(out)
    assert status["state"] == "failed" and url in status["error"] and "studio api" in status["error"]
    assert json.loads((out / "judge_results.json").read_text())["count_scored"] == 0


# ---------------------------------------------------------------- our own API server as the judge

@pytest.mark.slow
def test_our_api_server_as_judge_counts_unreadable_replies_as_failed(tiny_model_dir: Path, tmp_path: Path):
    from tests.engine.test_inference import READY_PREFIX, child_env, engine_command, read_line

    config = tmp_path / "api.yaml"
    config.write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir), "max_new_tokens": 16}))
    proc = subprocess.Popen(engine_command("api", str(config), "api_port=0", f"api_key={KEY}",
                                           "api_model_name=tiny-judge"), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=child_env(tmp_path))
    try:
        line = read_line(proc.stdout, 120)
        assert line.startswith(READY_PREFIX), line
        url = line.strip().removeprefix(READY_PREFIX) + "/v1"
        rows = [{"prompt": f"What is {i} + {i}?", "predict": str(2 * i), "label": str(2 * i)} for i in range(3)]
        predictions = write_predictions(tmp_path / "run", rows)
        out = tmp_path / "judged"
        env_key = {"JUDGE_API_KEY": KEY}
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env_key.items():
                mp.setenv(name, value)
            assert judge(f"judge_predictions={predictions}", f"judge_base_url={url}", "judge_model=tiny-judge",
                         "judge_max_tokens=16", "judge_concurrency=2", f"output_dir={out}") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = json.loads((out / "judge_results.json").read_text(encoding="utf-8"))
    assert summary["count_scored"] + summary["count_failed"] == 3
    records = [json.loads(x) for x in (out / "judge_results.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in records:  # a random tiny model: whatever it said is kept, and a reply without a score says why
        assert isinstance(record["reply"], str)
        assert (record["score"] is None) == (record["error"] is not None)
        if record["score"] is None:
            assert record["error"].startswith(("no score", "the score", "the judge's reply was empty"))
