"""LLM-as-judge: a judge model behind any OpenAI-compatible endpoint scores each prediction against its reference.

`python -m engine judge CONFIG.yaml` (or `studio judge key=value …`) reads a generated_predictions.jsonl
(`judge_predictions`: the file or the run folder holding it), asks `judge_model` at `judge_base_url` for a score
per row with the rubric (`judge_rubric`, else the built-in one), `judge_concurrency` requests at a time, and writes
into its run folder (`output_dir`, else `judge_<time>` beside the predictions), through the job lifecycle of
`engine.jobs` (status.json with `task: judge`, running_log.txt, progress lines in trainer_log.jsonl):
- judge_results.jsonl: one line per row (`index`, `score` or null, `reason`, `error`, `reply`, `prompt`,
  `predict`, `label`), appended as replies come, sorted by row at the end;
- judge_results.json: mean, std, sem, ci95, count_scored, count_failed, the rubric, scale, endpoint and model.
The key (`judge_api_key`, else the variable `judge_api_key_env` names) is sent as a Bearer header only: never
logged, never written. A stop (Abort) ends at once and keeps what is done; running the same settings into the
same folder again judges only the rows that have no score yet.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from engine.atomic_write import write_text_atomic
from engine.config import RunConfig
from engine.errors import ConfigError, DataError, ModelError
from engine.eval.judge_scores import check_rubric, parse_verdict, render_prompt, summarize_scores
from engine.eval.predict import PREDICTIONS_FILE
from engine.eval.progress import ProgressLog
from engine.jobs import Job, StopSignal, run_job
from engine.runfolder import write_json_atomic

logger = logging.getLogger("engine")

ROWS_FILE = "judge_results.jsonl"
SUMMARY_FILE = "judge_results.json"
PROBE_TIMEOUT_S = 10.0
RETRY_STATUSES = (408, 409, 429, 500, 502, 503, 504)


# --- the inputs -----------------------------------------------------------------------------------------------

def predictions_file(value: str | None) -> Path:
    """The predictions file `judge_predictions` names (a run folder means its generated_predictions.jsonl)."""
    if not value or not str(value).strip():
        raise ConfigError("judge_no_predictions", file=PREDICTIONS_FILE)
    path = Path(str(value).strip()).expanduser()
    if path.is_dir():
        path = path / PREDICTIONS_FILE
    if not path.is_file():
        raise ConfigError("judge_predictions_missing", path=str(path), file=PREDICTIONS_FILE)
    return path


def read_predictions(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The rows (`prompt`, `predict`, `label`; the first `limit`); a line that is not such a row names itself."""
    rows: list[dict[str, str]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or "predict" not in row:
                raise DataError("judge_bad_row", path=str(path), line=number)
            rows.append({k: "" if row.get(k) is None else str(row.get(k)) for k in ("prompt", "predict", "label")})
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise DataError("judge_no_rows", path=str(path))
    return rows


def endpoint_of(base_url: str) -> str:
    """scheme://host[:port]/path of the endpoint: what results may record (no credentials, no query)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}"


def check_judge_config(config: RunConfig) -> list[dict[str, str]]:
    """Every check a judge job needs before it starts, bar the endpoint itself; returns the rows to judge."""
    from engine.config.validate import check_field_ranges

    check_field_ranges(config)
    j = config.judge
    url = (j.judge_base_url or "").strip()
    if not url:
        raise ConfigError("judge_no_endpoint")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("judge_bad_url", url=url)
    if parts.username or parts.password:
        raise ConfigError("judge_url_credentials", env=j.judge_api_key_env)
    if not (j.judge_model or "").strip():
        raise ConfigError("judge_no_model")
    if j.judge_scale_min >= j.judge_scale_max:
        raise ConfigError("judge_bad_scale", low=j.judge_scale_min, high=j.judge_scale_max)
    check_rubric(j.judge_rubric)
    out = config.training.output_dir
    if out and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError("output_dir_is_file", path=out)
    return read_predictions(predictions_file(j.judge_predictions), j.judge_max_samples)


def api_key(config: RunConfig) -> str | None:
    """The endpoint's key: judge_api_key, else the environment variable judge_api_key_env names."""
    j = config.judge
    return j.judge_api_key or (os.environ.get(j.judge_api_key_env) if j.judge_api_key_env else None) or None


# --- the endpoint ---------------------------------------------------------------------------------------------

class JudgeClient:
    """Chat completions at an OpenAI-compatible endpoint: a reply, or a ModelError for what no retry can fix
    (nothing answers, a refused key, an unknown model or path). Thread-safe: the workers share it."""

    def __init__(self, config: RunConfig, stop: StopSignal | None = None) -> None:
        import httpx

        j = config.judge
        self.base_url = j.judge_base_url.strip().rstrip("/")
        self.model, self.env = j.judge_model.strip(), j.judge_api_key_env
        self.retries, self.stop = j.judge_retries, stop
        self.body = {"model": self.model, "temperature": j.judge_temperature, "max_tokens": j.judge_max_tokens}
        key = api_key(config)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(timeout=j.judge_timeout, headers=headers, follow_redirects=False)

    def close(self) -> None:
        """Close the connections."""
        self.http.close()

    def _fatal(self, response: Any) -> None:
        """Raise the ModelError for a status no retry fixes (401/403: the key; 404: the model or the path)."""
        detail = _error_text(response)
        if response.status_code in (401, 403):
            raise ModelError("judge_unauthorized", url=self.base_url, status=response.status_code, env=self.env,
                             detail=detail)
        if response.status_code == 404:
            raise ModelError("judge_not_found", url=self.base_url, model=self.model, detail=detail)

    def probe(self) -> None:
        """Ask the endpoint for its models: refuse a dead address or a refused key before any row is sent (a
        server without a model list answers something else, which is fine)."""
        import httpx

        try:
            response = self.http.get(f"{self.base_url}/models", timeout=PROBE_TIMEOUT_S)
        except httpx.HTTPError as err:
            raise ModelError("judge_unreachable", url=self.base_url, detail=_describe(err)) from None
        if response.status_code in (401, 403):
            self._fatal(response)

    def ask(self, prompt: str) -> str:
        """The judge's reply to `prompt`; timeouts, rate limits and server errors are retried with a growing pause,
        then raised as RuntimeError (that row fails; the next row is tried)."""
        import httpx

        body = {**self.body, "messages": [{"role": "user", "content": prompt}]}
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
            if self.stop is not None and self.stop.requested:
                raise RuntimeError("stopped")
            try:
                response = self.http.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.ConnectError as err:
                raise ModelError("judge_unreachable", url=self.base_url, detail=_describe(err)) from None
            except httpx.HTTPError as err:  # a timeout or a dropped connection: worth another try
                problem = _describe(err)
                continue
            if response.status_code in RETRY_STATUSES:
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                continue
            self._fatal(response)
            if response.status_code >= 400:  # e.g. 400 for a prompt longer than the judge's context
                raise RuntimeError(f"HTTP {response.status_code}: {_error_text(response)}")
            try:
                content = response.json()["choices"][0]["message"]["content"]
            except (ValueError, KeyError, IndexError, TypeError):
                raise RuntimeError(f"not a chat completion: {response.text[:200]!r}") from None
            return content if isinstance(content, str) else ""
        raise RuntimeError(f"no answer after {self.retries + 1} tries ({problem})")


def _describe(err: Exception) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def _error_text(response: Any) -> str:
    """The server's own error message (OpenAI's `{"error": {"message"}}` shape, else the start of the body)."""
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else error or data.get("detail")
        if message:
            return str(message)[:300]
    except (ValueError, AttributeError):
        pass
    return response.text[:300]


# --- the job --------------------------------------------------------------------------------------------------

def judge_output_dir(config: RunConfig) -> Path:
    """output_dir, else judge_<time> beside the predictions (in their run folder)."""
    if config.training.output_dir:
        return Path(config.training.output_dir)
    folder = predictions_file(config.judge.judge_predictions).parent
    return folder / f"judge_{datetime.now():%Y-%m-%d-%H-%M-%S}"


def settings_of(config: RunConfig) -> dict[str, Any]:
    """What makes two judgments comparable (and a folder resumable): rubric, scale, endpoint, model, inputs."""
    j = config.judge
    return {"predictions": str(predictions_file(j.judge_predictions).resolve()), "model": j.judge_model.strip(),
            "endpoint": endpoint_of(j.judge_base_url.strip()), "rubric": check_rubric(j.judge_rubric),
            "scale": [j.judge_scale_min, j.judge_scale_max], "temperature": j.judge_temperature}


def earlier_rows(run_dir: Path, settings: dict[str, Any], overwrite: bool) -> dict[int, dict[str, Any]]:
    """Scored rows of an earlier judgment with the same settings in this folder (kept: a resume); a folder
    holding a judgment with other settings is refused unless overwrite_output_dir."""
    summary, rows_path = run_dir / SUMMARY_FILE, run_dir / ROWS_FILE
    if overwrite or not rows_path.exists():
        return {}
    try:
        earlier = json.loads(summary.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier != settings:
        raise ConfigError("judge_dir_has_results", path=str(run_dir))
    kept: dict[int, dict[str, Any]] = {}
    for line in rows_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the last line of a killed run may be cut
        if isinstance(row, dict) and row.get("score") is not None and isinstance(row.get("index"), int):
            kept[row["index"]] = row
    return kept


def judge_row(client: JudgeClient, index: int, row: dict[str, str], rubric: str, low: int, high: int) -> dict:
    """One row's record: the score or the reason it has none (a failed request is a failed row, never a 0)."""
    record: dict[str, Any] = {"index": index, "score": None, "reason": "", "error": None, "reply": None, **row}
    try:
        reply = client.ask(render_prompt(rubric, row, low, high))
    except RuntimeError as err:
        record["error"] = f"request failed: {err}"
        return record
    verdict = parse_verdict(reply, low, high)
    record.update(score=verdict.score, reason=verdict.reason, error=verdict.error, reply=reply)
    return record


def write_summary(run_dir: Path, settings: dict[str, Any], records: dict[int, dict], total: int,
                  complete: bool) -> dict[str, Any]:
    """judge_results.json from the records so far; the rows file rewritten in row order."""
    ordered = [records[i] for i in sorted(records)]
    scores = [r["score"] for r in ordered if r.get("score") is not None]
    summary = {**summarize_scores(scores, len(ordered) - len(scores)), "count_rows": total, "complete": complete,
               "scale": settings["scale"], "model": settings["model"], "endpoint": settings["endpoint"],
               "endpoint_host": urlsplit(settings["endpoint"]).netloc, "rubric": settings["rubric"],
               "predictions": settings["predictions"], "settings": settings}
    write_text_atomic(run_dir / ROWS_FILE, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    write_json_atomic(run_dir / SUMMARY_FILE, summary)
    return summary


def judge_predictions(config: RunConfig, run_dir: Path, stop: StopSignal) -> dict[str, Any]:
    """Score every row not yet scored, `judge_concurrency` at a time; write both files; return the summary."""
    j = config.judge
    rows = check_judge_config(config)
    settings = settings_of(config)
    rubric, (low, high) = settings["rubric"], settings["scale"]
    records = earlier_rows(run_dir, settings, config.training.overwrite_output_dir)
    todo = [i for i in range(len(rows)) if i not in records]
    write_summary(run_dir, settings, records, len(rows), complete=not todo)
    logger.info("Judging %d of %d rows with %s at %s (%d at a time).", len(todo), len(rows), settings["model"],
                settings["endpoint"], j.judge_concurrency)
    client = JudgeClient(config, stop)
    progress = ProgressLog(run_dir, len(todo), stage="judge")
    pool = ThreadPoolExecutor(max_workers=j.judge_concurrency, thread_name_prefix="judge")
    try:
        client.probe()
        with open(run_dir / ROWS_FILE, "a", encoding="utf-8") as out:
            def keep(record: dict[str, Any]) -> None:
                records[record["index"]] = record
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
                out.flush()
                progress.advance()
                if record["error"]:
                    logger.warning("Row %d: %s", record["index"], record["error"])

            if todo:  # the first row alone: a dead endpoint fails once, not once per worker
                keep(judge_row(client, todo[0], rows[todo[0]], rubric, low, high))
            waiting: set[Future] = {pool.submit(judge_row, client, i, rows[i], rubric, low, high) for i in todo[1:]}
            while waiting and not stop.requested:
                done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    keep(future.result())  # a ModelError (dead endpoint, refused key) ends the job here
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
        summary = write_summary(run_dir, settings, records, len(rows), complete=len(records) == len(rows))
    logger.info("Judged %d rows: %d scored, %d failed; mean %s, 95%% interval %s.", len(records),
                summary["count_scored"], summary["count_failed"], summary["mean"], summary["ci95"])
    return summary


def run_judge(config: RunConfig) -> int:
    """Judge the predictions into the job's run folder (through the job lifecycle); the exit code."""
    check_judge_config(config)
    run_dir = judge_output_dir(config)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("output_dir_is_file", path=str(run_dir))
    earlier_rows(run_dir, settings_of(config), config.training.overwrite_output_dir)  # refuse before any write
    run_dir.mkdir(parents=True, exist_ok=True)
    config.training.output_dir = str(run_dir)
    job = Job("judge", run_dir, config, stop=StopSignal())

    def body() -> dict[str, Any]:
        summary = judge_predictions(config, run_dir, job.stop)
        return {"mean": summary["mean"], "count_scored": summary["count_scored"],
                "count_failed": summary["count_failed"]}

    return run_job(job, body)
