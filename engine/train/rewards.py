"""The rewards PPO and GRPO optimise: rule rewards and a trained reward model, one set for both stages.

`reward_funcs: exact_match,length:0.5` picks rewards from `REWARDS` by name (optionally `name:weight`); the score
of a completion is their weighted sum. `reward_model: <run folder>` adds the `reward_model` reward. Every reward
is built from the run config and maps a `Completions` batch to one float per completion. The parsing is
torch-free, so config validation can check the names before anything loads.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.config.rewards import REWARD_NAMES, compile_format_pattern, parse_reward_funcs

logger = logging.getLogger(__name__)


@dataclass
class Completions:
    """A batch to score: the prompts (canonical examples, with the `reference` answer) and the sampled texts."""

    examples: list[dict]
    texts: list[str]


RewardFn = Callable[[Completions], list[float]]


@dataclass
class Reward:
    """One chosen reward: its name, its weight in the score and the function."""

    name: str
    weight: float
    fn: RewardFn


# ---------------------------------------------------------------- prompts


def rl_examples(examples: list[dict]) -> list[dict]:
    """Prompt-side examples for sampling: a trailing reply is removed and kept as `reference` (or None)."""
    prompts = []
    for example in examples:
        messages = list(example["messages"])
        reference = None
        if messages and messages[-1]["role"] == "assistant":
            reference = messages.pop()["content"]
        prompts.append({**example, "messages": messages, "reference": reference})
    return prompts


# ---------------------------------------------------------------- rule rewards

_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"(?:answer\s*(?:is|:)|####)\s*(.+)", re.IGNORECASE)


def extract_answer(text: str) -> str:
    """The answer part of a completion: `\\boxed{…}`, after `####` / `answer:` / `answer is`, else the whole text."""
    boxed = _BOXED.findall(text)
    if boxed:
        return boxed[-1]
    found = _ANSWER_IS.findall(text)
    return found[-1] if found else text


def normalize_answer(text: str) -> str:
    """Case, spaces, surrounding `$`, thousands separators and a final full stop do not change an answer."""
    text = " ".join(text.strip().lower().split())
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return text.strip("$ ").rstrip(".").strip()


def exact_match(config: RunConfig) -> RewardFn:
    """1 when the completion's answer equals the reference answer (normalised), else 0."""

    def score(batch: Completions) -> list[float]:
        return [float(ex["reference"] is not None
                      and normalize_answer(extract_answer(text)) == normalize_answer(ex["reference"]))
                for ex, text in zip(batch.examples, batch.texts, strict=True)]

    return score


def format_reward(config: RunConfig) -> RewardFn:
    """1 when the whole completion matches `reward_format_pattern` (default: only a number), else 0."""
    pattern = compile_format_pattern(config.finetuning.reward_format_pattern)
    return lambda batch: [float(pattern.fullmatch(text) is not None) for text in batch.texts]


def length_reward(config: RunConfig) -> RewardFn:
    """Shorter is better: 1 − characters / `reward_length_max`, never below 0."""
    limit = config.finetuning.reward_length_max
    return lambda batch: [max(0.0, 1.0 - len(text.strip()) / limit) for text in batch.texts]


# ---------------------------------------------------------------- reward model


def reward_model_args(config: RunConfig) -> Any:
    """ModelArguments of the reward model: a run folder (base from its config.yaml + its adapter) or a model."""
    from dataclasses import replace

    from engine.config import load_config
    from engine.config.model import ModelArguments

    ft = config.finetuning
    folder = Path(str(ft.reward_model)).expanduser()
    adapters: list[str] = []
    if (folder / "config.yaml").is_file():  # a reward-model run of this studio
        run_model = load_config(folder / "config.yaml").model
        args = replace(run_model)
        adapters = [a for a in (run_model.adapter_name_or_path or "").split(",") if a.strip()]
        if (folder / "adapter_config.json").is_file():
            adapters.append(str(folder))
        else:
            args.model_name_or_path = str(folder)
            adapters = []
    else:
        args = ModelArguments(model_name_or_path=str(folder), template=config.model.template)
    if ft.reward_model_adapters:
        adapters += [a.strip() for a in ft.reward_model_adapters.split(",") if a.strip()]
    args.adapter_name_or_path = ",".join(adapters) or None
    args.quantization_bit = ft.reward_model_quantization_bit
    if args.trust_remote_code and not config.model.trust_remote_code:
        logger.warning("The reward model's run was trained with trust_remote_code: true; it is not carried over. Set "
                       "trust_remote_code=true for this run if you trust that model's code.")
    args.trust_remote_code = config.model.trust_remote_code  # only ever what the user set for this job
    return args


def reward_model(config: RunConfig) -> RewardFn:
    """The score of a trained reward model (stage rm) on the prompt and completion, rendered with its template."""
    import torch

    from engine.config.finetuning import FinetuningArguments
    from engine.model.chat_template import load_template
    from engine.model.loader import load_model, load_tokenizer, resolve_model_folder
    from engine.templates import render_conversation

    args = reward_model_args(config)
    tokenizer = load_tokenizer(args)
    template = load_template(args.template, resolve_model_folder(args), tokenizer)
    method = "lora" if args.adapter_name_or_path else "full"
    model = load_model(tokenizer, args, FinetuningArguments(stage="rm", finetuning_type=method), is_trainable=False)
    if torch.cuda.is_available() and not config.training.use_cpu and not getattr(model, "hf_device_map", None):
        model.to("cuda")
    device = next(model.parameters()).device
    cutoff = config.data.cutoff_len

    @torch.no_grad()
    def score(batch: Completions) -> list[float]:
        rows = [render_conversation(template, tokenizer, ex["messages"] + [{"role": "assistant", "content": text}],
                                    ex.get("system"), ex.get("tools"), cutoff_len=cutoff)[0]
                for ex, text in zip(batch.examples, batch.texts, strict=True)]
        width = max(len(row) for row in rows)
        ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows], device=device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=device)
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()

    return score


REWARDS: dict[str, Callable[[RunConfig], RewardFn]] = {
    "exact_match": exact_match,
    "format": format_reward,
    "length": length_reward,
    "reward_model": reward_model,
}
assert tuple(REWARDS) == REWARD_NAMES, "engine.config.rewards.REWARD_NAMES must list exactly the rewards built here"


# ---------------------------------------------------------------- choosing and scoring


def build_rewards(config: RunConfig) -> list[Reward]:
    """The chosen rewards, built (a reward model is loaded here)."""
    return [Reward(name, weight, REWARDS[name](config)) for name, weight in parse_reward_funcs(config)]


def score_completions(rewards: list[Reward], batch: Completions) -> tuple[list[float], dict[str, float]]:
    """The weighted sum per completion, and each reward's mean over the batch (for the log)."""
    totals = [0.0] * len(batch.texts)
    means: dict[str, float] = {}
    for reward in rewards:
        values = reward.fn(batch)
        totals = [total + reward.weight * value for total, value in zip(totals, values, strict=True)]
        means[f"rewards/{reward.name}"] = sum(values) / max(len(values), 1)
    return totals, means


def trl_reward_funcs(rewards: list[Reward]) -> list[Callable[..., list[float]]]:
    """The rewards as TRL reward functions; the prompt's canonical example travels in the `example` column (JSON)."""

    def adapt(reward: Reward) -> Callable[..., list[float]]:
        def reward_func(prompts: list, completions: list, example: list[str], **kwargs: Any) -> list[float]:
            return reward.fn(Completions([json.loads(e) for e in example], list(completions)))

        reward_func.__name__ = reward.name  # TRL logs `rewards/<name>/mean` under this name
        return reward_func

    return [adapt(reward) for reward in rewards]
