"""LLM-as-judge settings (`studio judge`): which predictions, which OpenAI-compatible endpoint, which rubric and scale.

LLaMA-Factory has no keys for this; ours all start with `judge_`.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.fields import option


@dataclass
class JudgeArguments:
    """A judge model scores each prediction against its reference; results go to judge_results.json(l)."""

    judge_predictions: str | None = option(None, "generated_predictions.jsonl to judge (rows `prompt`, `predict`, "
                                                 "`label`), or the run folder holding it.")
    judge_base_url: str | None = option(None, "OpenAI-compatible endpoint of the judge, e.g. "
                                              "http://127.0.0.1:8000/v1 (`studio api`) or https://api.openai.com/v1.")
    judge_model: str | None = option(None, "Model id sent to the endpoint as `model`.")
    judge_api_key_env: str = option("JUDGE_API_KEY", "Environment variable holding the endpoint's key (read at "
                                                     "run time, never written anywhere); unset: no key is sent.")
    judge_api_key: str | None = option(None, "The endpoint's key given directly (never written into config.yaml "
                                             "or results; prefer judge_api_key_env).", secret=True)
    judge_rubric: str | None = option(None, "Instructions to the judge with {prompt}, {predict}, {label}, {min} and "
                                            "{max} slots; empty: the built-in rubric (correctness against the "
                                            "reference, then helpfulness).")
    judge_scale_min: int = option(1, "Lowest score of the scale.", min=0, max=100)
    judge_scale_max: int = option(10, "Highest score of the scale.", min=1, max=100)
    judge_max_samples: int | None = option(None, "Judge only the first N predictions (empty: all).", min=1)
    judge_concurrency: int = option(4, "Requests in flight at once.", min=1, max=64)
    judge_temperature: float = option(0.0, "Sampling temperature of the judge (0: its most likely answer).",
                                      min=0.0, max=2.0, step=0.05)
    judge_max_tokens: int = option(256, "Longest reply the judge may write per row.", min=8, max=8192)
    judge_timeout: float = option(60.0, "Seconds to wait for one reply.", min=1.0, max=3600.0)
    judge_retries: int = option(2, "Retries of a row after a timeout, a rate limit or a server error.", min=0, max=10)
