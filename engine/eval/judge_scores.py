"""The judge's words and numbers: the rubric it is given, the score read back from its reply, and the summary.

Pure functions (no network, no files), so the parsing and the statistics are tested on their own. A reply whose
score cannot be read is a failure with its reason, never a 0: a 0 would drag the mean down for a formatting slip.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

DEFAULT_RUBRIC = """You are a strict and fair judge of an AI assistant's answer.
Compare the assistant's answer with the reference answer. Judge first whether it is correct: it agrees with the \
reference on every fact that matters. Then judge how helpful it is: complete, clear and on topic. An answer that \
contradicts the reference scores low however well it is written; an answer that says the same as the reference \
in other words scores high.

[Question]
{prompt}

[Reference answer]
{label}

[Assistant's answer]
{predict}

Reply in exactly two lines:
Score: <one whole number from {min} to {max}>
Reason: <one short sentence>"""

SLOTS = ("prompt", "predict", "label", "min", "max")
REASON_CHARS = 500  # a reason longer than this is cut: the table shows it, the raw reply keeps everything

_SCORE_LINE = re.compile(r"(?im)^[\s*#>_-]*(?:final\s+)?(?:score|rating|grade)\s*\**\s*[:=]?\s*\**\s*\[{0,2}\s*"
                         r"(-?\d+(?:\.\d+)?)\s*\]{0,2}(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?")
_SCORE_IS = re.compile(r"(?i)\b(?:score|rating|grade)\s+(?:is|of)\s*\**\s*(-?\d+(?:\.\d+)?)"
                       r"(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?")
_BRACKETED = re.compile(r"\[\[\s*(-?\d+(?:\.\d+)?)\s*\]\]")
_BARE = re.compile(r"^\s*\**\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*\**\s*\.?\s*$")
_THINKING = re.compile(r"(?is)<think>.*?(?:</think>|$)")  # a reasoning model's thoughts are not its verdict
_REASON = re.compile(r"(?is)^[\s*#>_-]*(?:reason|explanation|justification)\s*\**\s*[:=]\s*\**\s*(.*)", re.M)


def check_rubric(rubric: str | None) -> str:
    """The rubric to use (the built-in one when empty); a user's rubric must show the judge the answer."""
    if rubric is None or not rubric.strip():
        return DEFAULT_RUBRIC
    if "{predict}" not in rubric:
        raise ConfigError("judge_rubric_no_predict", slot="{predict}", slots=", ".join("{" + s + "}" for s in SLOTS))
    return rubric


def render_prompt(rubric: str, row: dict[str, Any], low: int, high: int) -> str:
    """The rubric with its slots filled. Only the five slots are replaced, so other braces in a user's rubric (a
    JSON example, say) stay as written, and braces inside the row's texts are never read as slots."""
    values = {"prompt": row.get("prompt", ""), "predict": row.get("predict", ""), "label": row.get("label", ""),
              "min": low, "max": high}
    pattern = re.compile(r"\{(" + "|".join(SLOTS) + r")\}")
    return pattern.sub(lambda m: str(values[m.group(1)]), rubric)


@dataclass
class Verdict:
    """What one reply says: the score (None when unreadable), the judge's reason, and why it failed if it did."""

    score: float | None
    reason: str
    error: str | None = None


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _from_json(reply: str) -> tuple[float, float | None] | None:
    """A reply that is (or holds) a JSON object with a numeric `score`."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(reply[start:end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    value = next((data[k] for k in ("score", "rating", "grade") if k in data), None)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return _number(str(value)), None
    except ValueError:
        return None


def _find_score(reply: str) -> tuple[float, float | None] | None:
    """(score, the denominator it was written over, e.g. the 10 of "7/10"), from the first form that matches."""
    found = _SCORE_LINE.search(reply) or _SCORE_IS.search(reply)
    if found:
        return _number(found.group(1)), _number(found.group(2)) if found.group(2) else None
    found = _BRACKETED.search(reply)
    if found:
        return _number(found.group(1)), None
    found = _BARE.match(reply.splitlines()[0] if reply.strip() else "")
    if found and len(reply.strip().splitlines()) <= 2:
        return _number(found.group(1)), _number(found.group(2)) if found.group(2) else None
    return _from_json(reply)


def _reason(reply: str) -> str:
    found = _REASON.search(reply)
    text = found.group(1) if found else _SCORE_LINE.sub("", reply)
    text = " ".join(text.split())
    return text[:REASON_CHARS] + ("…" if len(text) > REASON_CHARS else "")


def parse_verdict(reply: str | None, low: int, high: int) -> Verdict:
    """Read the score and the reason from a judge's reply; a missing or off-scale score is a failure with its
    reason (in English: it goes into judge_results.jsonl, a file, like the judge's own words)."""
    reply = _THINKING.sub("", reply or "")
    if not reply.strip():
        return Verdict(None, "", "the judge's reply was empty")
    found = _find_score(reply)
    reason = _reason(reply)
    if found is None:
        return Verdict(None, reason, f"no score from {low} to {high} found in the reply")
    score, over = found
    if over is not None and over != high:
        return Verdict(None, reason, f"the score {score:g}/{over:g} is not on the {low}–{high} scale")
    if not low <= score <= high:
        return Verdict(None, reason, f"the score {score:g} is outside the {low}–{high} scale")
    return Verdict(score, reason)


# Two-sided 97.5% quantiles of Student's t for 1–30 degrees of freedom; beyond, the normal's 1.96 is within 2%.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(degrees: int) -> float:
    """The 97.5% quantile of Student's t (what a 95% interval of a mean from a small sample needs)."""
    return _T975[degrees - 1] if degrees <= len(_T975) else 1.96


def summarize_scores(scores: list[float], failed: int) -> dict[str, Any]:
    """Mean, sample standard deviation, standard error and 95% interval (Student's t) of the readable scores.

    Failed rows are counted apart and never averaged in. With one score the spread is unknown (None); with none
    the mean is None too.
    """
    n = len(scores)
    summary: dict[str, Any] = {"count_scored": n, "count_failed": failed, "mean": None, "std": None, "sem": None,
                               "ci95": None, "min": min(scores) if scores else None,
                               "max": max(scores) if scores else None}
    if not n:
        return summary
    mean = sum(scores) / n
    summary["mean"] = round(mean, 4)
    if n > 1:
        std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
        sem = std / math.sqrt(n)
        half = t_quantile(n - 1) * sem
        summary.update(std=round(std, 4), sem=round(sem, 4), ci95=[round(mean - half, 4), round(mean + half, 4)])
    return summary
