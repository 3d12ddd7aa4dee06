"""The names of the PPO / GRPO rewards and the parsing of `reward_funcs`: torch-free, so validation can use them.

The rewards themselves are built in `engine.train.rewards`, whose `REWARDS` has exactly these names.
"""

from __future__ import annotations

import re

from engine.config.loader import RunConfig
from engine.errors import ConfigError

REWARD_NAMES = ("exact_match", "format", "length", "reward_model")


def compile_format_pattern(pattern: str) -> re.Pattern[str]:
    """`reward_format_pattern` compiled, or a ConfigError that names the regex problem."""
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as err:
        raise ConfigError("reward_format_invalid", pattern=pattern, error=str(err)) from None


def parse_reward_funcs(config: RunConfig) -> list[tuple[str, float]]:
    """(name, weight) of each chosen reward; `reward_model` joins when a reward model is set. Torch-free."""
    chosen: list[tuple[str, float]] = []
    for item in (config.finetuning.reward_funcs or "").split(","):
        if not item.strip():
            continue
        name, _, weight = (part.strip() for part in item.partition(":"))
        if name not in REWARD_NAMES:
            raise ConfigError("reward_unknown", name=name, known=", ".join(REWARD_NAMES))
        try:
            chosen.append((name, float(weight) if weight else 1.0))
        except ValueError:
            raise ConfigError("reward_weight_invalid", name=name, weight=weight) from None
    names = [name for name, _ in chosen]
    if config.finetuning.reward_model and "reward_model" not in names:
        chosen.append(("reward_model", 1.0))
    if "reward_model" in names and not config.finetuning.reward_model:
        raise ConfigError("reward_model_not_set")
    return chosen
