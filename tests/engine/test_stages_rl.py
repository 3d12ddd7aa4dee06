"""RL stages: the rewards, PPO's parts, config checks, PPO and GRPO runs on the tiny model, abort and resume.

The learning checks use a toy whose right behaviour is known: the `format` reward with the pattern "the completion
contains a digit". A random policy writes one in about a fifth of its 8-token completions; the mean reward of the
last steps must clearly beat that of the first.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from engine.train.rewards import (
    REWARDS,
    Completions,
    Reward,
    parse_reward_funcs,
    rl_examples,
    score_completions,
    trl_reward_funcs,
)
from engine.validation import validate_config

CONTAINS_DIGIT = r"reward_format_pattern=.*\d.*"
RUN_FILES = {"config.yaml", "trainer_log.jsonl", "running_log.txt", "status.json", "all_results.json",
             "training_loss.png",
             ".lock", "adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json",
             "tokenizer_config.json", "chat_template.jinja"}
PPO_FILES = RUN_FILES | {"value_head.safetensors"}
GRPO_FILES = RUN_FILES | {"trainer_state.json", "training_args.bin", "train_results.json"}
PPO_CHECKPOINT_FILES = {"adapter_config.json", "adapter_model.safetensors", "README.md", "value_head.safetensors",
                        "optimizer.pt", "scheduler.pt", "rng_state.pt", "ppo_state.json"}
LOG_KEYS = ("current_steps", "total_steps", "loss", "lr", "percentage", "elapsed_time", "remaining_time", "reward")
PPO_LOG_KEYS = (*LOG_KEYS, "kl", "value_loss", "policy_loss", "entropy")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's matrices are too small to share between threads: one thread is several times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config_of(*overrides: str):
    return validate_config(load_config(None, ["dataset=prompts_math_demo", *overrides]))


def train(model_dir: Path, out: Path, stage: str, *overrides: str) -> list[dict]:
    from engine.train.run import run_training

    config = config_of(f"model_name_or_path={model_dir}", f"output_dir={out}", f"stage={stage}", "max_steps=3",
                       "logging_steps=1", "per_device_train_batch_size=4", "learning_rate=1e-3", "save_steps=1000",
                       "seed=7", "lora_rank=4", "max_completion_length=8", "num_generations=2", *overrides)
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    return read_log(out)


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]


def rewards_of(records: list[dict]) -> list[float]:
    return [r["reward"] for r in records if "reward" in r]


# ---------------------------------------------------------------- rewards


def batch(*texts: str, reference: str | None = "1064") -> Completions:
    example = {"messages": [{"role": "user", "content": "What is 56 × 19?"}], "system": None, "tools": None,
               "reference": reference}
    return Completions([example] * len(texts), list(texts))


def test_exact_match_normalises_the_answer():
    score = REWARDS["exact_match"](config_of("stage=grpo", "reward_funcs=exact_match"))
    texts = ("1064", " 1,064. ", "The answer is 1064", "#### 1064", r"so \boxed{1064}", "1065", "")
    assert score(batch(*texts)) == [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert score(batch("1064", reference=None)) == [0.0]


def test_format_and_length_rewards():
    fmt = REWARDS["format"](config_of("stage=grpo", "reward_funcs=format"))
    assert fmt(batch("42", " -3.5\n", "42 apples", "")) == [1.0, 1.0, 0.0, 0.0]
    custom = REWARDS["format"](config_of("stage=grpo", "reward_funcs=format", CONTAINS_DIGIT))
    assert custom(batch("I think 4", "four")) == [1.0, 0.0]
    length = REWARDS["length"](config_of("stage=grpo", "reward_funcs=length", "reward_length_max=10"))
    assert length(batch("", "12345", "x" * 30)) == [1.0, 0.5, 0.0]


def test_rewards_are_weighted_and_summed():
    config = config_of("stage=grpo", "reward_funcs=exact_match:2, length:0.5", "reward_length_max=8")
    assert parse_reward_funcs(config) == [("exact_match", 2.0), ("length", 0.5)]
    rewards = [Reward(name, weight, REWARDS[name](config)) for name, weight in parse_reward_funcs(config)]
    totals, means = score_completions(rewards, batch("1064", "12345678"))
    assert totals == pytest.approx([2.0 + 0.5 * 0.5, 0.0])
    assert means == pytest.approx({"rewards/exact_match": 0.5, "rewards/length": 0.25})
    # The same functions, as TRL calls them (the example travels as JSON in a dataset column).
    funcs = trl_reward_funcs(rewards)
    assert [f.__name__ for f in funcs] == ["exact_match", "length"]
    example = json.dumps(batch("x").examples[0])
    assert funcs[0](prompts=["p"], completions=["1,064"], example=[example], trainer_state=None) == [1.0]


def test_the_reference_answer_is_split_off_the_prompt():
    rows = rl_examples([{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
                        {"messages": [{"role": "user", "content": "hi"}]}])
    assert rows[0]["messages"] == [{"role": "user", "content": "2+2?"}] and rows[0]["reference"] == "4"
    assert rows[1]["reference"] is None


# ---------------------------------------------------------------- config checks


@pytest.mark.parametrize("stage", ["ppo", "grpo"])
def test_a_config_without_any_reward_is_refused(stage: str):
    with pytest.raises(ConfigError) as info:
        config_of(f"stage={stage}")
    assert info.value.key == "stage_needs_reward" and stage in info.value.message()


def test_an_unknown_reward_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as info:
        config_of("stage=ppo", "reward_funcs=exact_match,brevity")
    assert info.value.key == "reward_unknown"
    message = info.value.message()
    assert "brevity" in message and all(name in message for name in REWARDS)


@pytest.mark.parametrize(("overrides", "key"), [
    (["stage=grpo", "reward_funcs=length:much"], "reward_weight_invalid"),
    (["stage=grpo", "reward_funcs=reward_model"], "reward_model_not_set"),
    (["stage=grpo", "reward_funcs=format", "reward_format_pattern=(unclosed"], "reward_format_invalid"),
    (["stage=ppo", "reward_funcs=length", "finetuning_type=full"], "ppo_needs_lora"),
    (["stage=grpo", "reward_funcs=length", "per_device_train_batch_size=6", "num_generations=4"],
     "grpo_batch_not_divisible"),
    (["stage=ppo", "reward_model=./no/such/run"], "model_path_missing"),
    (["stage=ppo", "reward_model=./tests", "reward_model_type=api"], "reward_api_unsupported"),
])
def test_rl_config_mistakes(overrides: list[str], key: str):
    with pytest.raises(ConfigError) as info:
        config_of(*overrides)
    assert info.value.key == key


# ---------------------------------------------------------------- PPO parts


def test_gae_on_a_hand_computed_example():
    import torch

    from engine.train.ppo_core import compute_gae

    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.5, 0.5, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])  # the last position is padding: its value must not leak in
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    raw = torch.tensor([0.5 * 0.25, 0.5 * 0.5, 0.5])  # deltas 0, 0, 0.5, discounted by lam
    assert returns[0, :3] == pytest.approx((raw + 0.5).tolist())
    expected = (raw - raw.mean()) / raw.var(unbiased=False).sqrt()
    assert advantages[0, :3] == pytest.approx(expected.tolist(), abs=1e-4) and advantages[0, 3] == 0


def test_ppo_losses_start_unclipped_and_clip_large_ratios():
    import torch

    from engine.train.ppo_core import Rollout, ppo_losses

    old = torch.log(torch.full((1, 2), 0.5))
    rollout = Rollout(queries=torch.zeros(1, 1), query_mask=torch.ones(1, 1), responses=torch.zeros(1, 2),
                      response_mask=torch.ones(1, 2), logprobs=old, values=torch.zeros(1, 2),
                      advantages=torch.tensor([[1.0, 1.0]]), returns=torch.ones(1, 2))
    policy, value, clipfrac = ppo_losses(old.clone(), torch.zeros(1, 2), rollout, 0.2, 0.2)
    assert policy.item() == pytest.approx(-1.0) and value.item() == pytest.approx(0.5) and clipfrac == 0
    policy, value, clipfrac = ppo_losses(old + 1.0, torch.full((1, 2), 5.0), rollout, 0.2, 0.2)
    assert policy.item() == pytest.approx(-1.2) and clipfrac == 1.0  # the gain stops at 1 + cliprange
    assert value.item() == pytest.approx(0.5 * 16)  # the unclipped error is the larger one and counts


def test_kl_controller_and_score_statistics():
    import torch

    from engine.train.ppo_core import KLController, RunningMoments

    fixed = KLController(0.1, target=0)
    fixed.update(100.0, 8)
    assert fixed.coef == 0.1
    adaptive = KLController(0.1, target=6.0, horizon=100)
    adaptive.update(12.0, 10)
    assert adaptive.coef == pytest.approx(0.1 * (1 + 0.2 * 10 / 100))
    moments, scores = RunningMoments(), torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, -2.0])
    moments.update(scores[:4])
    moments.update(scores[4:])
    assert moments.mean == pytest.approx(scores.mean().item())
    assert moments.var == pytest.approx(scores.var(unbiased=False).item(), rel=1e-5)


def test_prompt_order_is_resumable_by_step():
    from engine.train.ppo import prompt_indices

    steps = [prompt_indices(10, 4, step, seed=3, shuffle=True) for step in range(5)]
    flat = [i for s in steps for i in s]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert prompt_indices(10, 4, 3, seed=3, shuffle=True) == steps[3]
    assert prompt_indices(10, 4, 1, seed=3, shuffle=False) == [4, 5, 6, 7]


# ---------------------------------------------------------------- runs


@pytest.mark.slow
def test_ppo_run_folder_and_log(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    records = train(tiny_model_dir, out, "ppo", "reward_funcs=format,length:0.5")
    assert {p.name for p in out.iterdir() if p.is_file()} == PPO_FILES
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["checkpoint-3"]
    assert {p.name for p in (out / "checkpoint-3").iterdir()} == PPO_CHECKPOINT_FILES
    assert [r["current_steps"] for r in records] == [1, 2, 3]
    for key in (*PPO_LOG_KEYS, "rewards/format", "rewards/length"):
        assert key in records[-1], key
    assert records[-1]["percentage"] == 100.0 and records[-1]["total_steps"] == 3
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "finished" and status["error"] is None
    results = json.loads((out / "all_results.json").read_text())
    assert results["global_step"] == 3 and "train_loss" in results
    assert "template: chatml" in (out / "config.yaml").read_text()


@pytest.mark.slow
def test_grpo_run_folder_and_log(tiny_model_dir: Path, tmp_path: Path):
    out = tmp_path / "run"
    records = train(tiny_model_dir, out, "grpo", "reward_funcs=exact_match,format")
    assert {p.name for p in out.iterdir() if p.is_file()} == GRPO_FILES
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["checkpoint-3"]
    assert [r["current_steps"] for r in records] == [1, 2, 3]
    for key in (*LOG_KEYS, "rewards/exact_match/mean", "rewards/format/mean", "entropy"):
        assert key in records[-1], key
    assert json.loads((out / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_ppo_abort_saves_a_checkpoint_and_resume_continues_the_steps(tiny_model_dir: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    from engine.train import ppo_core

    common = ("reward_funcs=length", "max_steps=4", "learning_rate=1e-2")
    straight = rewards_of(train(tiny_model_dir, tmp_path / "straight", "ppo", *common))

    original, calls = ppo_core.ppo_step, []

    def step_then_sigterm(*args, **kwargs):
        metrics = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # what the studio's Abort button does: SIGTERM to the training process
            os.kill(os.getpid(), signal.SIGTERM)
        return metrics

    monkeypatch.setattr(ppo_core, "ppo_step", step_then_sigterm)
    out = tmp_path / "run"
    from engine.train.run import run_training

    config = config_of(f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "stage=ppo", "logging_steps=1",
                       "per_device_train_batch_size=4", "save_steps=1000", "seed=7", "lora_rank=4",
                       "max_completion_length=8", *common)
    assert run_training(config) == 0
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "aborted" and status["checkpoint"].endswith("checkpoint-2")
    assert {p.name for p in (out / "checkpoint-2").iterdir()} == PPO_CHECKPOINT_FILES
    assert [r["current_steps"] for r in read_log(out)] == [1, 2]

    monkeypatch.setattr(ppo_core, "ppo_step", original)
    config.training.resume_from_checkpoint = True
    assert run_training(config) == 0, (out / "running_log.txt").read_text()[-3000:]
    records = read_log(out)
    assert [r["current_steps"] for r in records] == [1, 2, 3, 4]
    assert json.loads((out / "status.json").read_text())["state"] == "finished"
    # Weights, optimiser, RNG and data order all came back: the resumed steps are the uninterrupted run's.
    assert rewards_of(records) == pytest.approx(straight)


def test_a_reward_model_run_does_not_pass_on_trust_remote_code(tmp_path: Path):
    from engine.config import save_config
    from engine.train.rewards import reward_model_args

    rm_run = tmp_path / "rm"
    save_config(load_config(None, {"model_name_or_path": "org/base", "trust_remote_code": True}), rm_run / "config.yaml")
    assert reward_model_args(config_of("stage=ppo", f"reward_model={rm_run}")).trust_remote_code is False
    asked = config_of("stage=ppo", f"reward_model={rm_run}", "trust_remote_code=true")
    assert reward_model_args(asked).trust_remote_code is True


class Planted:
    """Unpickling this creates `path`: proof that a planted file ran code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


@pytest.mark.slow
def test_ppo_resume_never_unpickles_a_planted_rng_file(tiny_model_dir: Path, tmp_path: Path):
    """A checkpoint is a folder anyone may have copied in: resuming must not run code hidden in a pickle."""
    import pickle

    out = tmp_path / "run"
    train(tiny_model_dir, out, "ppo", "reward_funcs=length", "max_steps=1", "save_steps=1")
    checkpoint = out / "checkpoint-1"
    marker = tmp_path / "pwned"
    for name in ("rng_state.pt", "rng_state.safetensors"):
        (checkpoint / name).unlink(missing_ok=True)
    (checkpoint / "rng_state.pt").write_bytes(pickle.dumps({"cpu": Planted(marker), "cuda": []}))
    from engine.train.run import run_training

    config = config_of(f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "stage=ppo", "max_steps=2",
                       "per_device_train_batch_size=4", "seed=7", "lora_rank=4", "max_completion_length=8",
                       "reward_funcs=length", "resume_from_checkpoint=true")
    assert run_training(config) == 1
    assert not marker.exists(), "the planted pickle ran"
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "rng_state.pt" in status["error"]


@pytest.mark.slow
def test_ppo_scores_with_a_trained_reward_model_run(tiny_model_dir: Path, tmp_path: Path):
    rm_dir = tmp_path / "rm"
    train(tiny_model_dir, rm_dir, "rm", "dataset=dpo_en_demo", "max_samples=16", "cutoff_len=128")
    score = REWARDS["reward_model"](config_of("stage=ppo", f"reward_model={rm_dir}"))
    first = score(batch("1064", "no idea at all"))
    assert len(first) == 2 and first != [first[0]] * 2 and score(batch("1064", "no idea at all")) == first
    records = train(tiny_model_dir, tmp_path / "ppo", "ppo", f"reward_model={rm_dir}", "max_steps=2")
    assert "rewards/reward_model" in records[-1]


@pytest.mark.slow
def test_ppo_learns_a_known_behaviour(tiny_model_dir: Path, tmp_path: Path):
    records = train(tiny_model_dir, tmp_path / "run", "ppo", "reward_funcs=format", CONTAINS_DIGIT, "max_steps=50",
                    "per_device_train_batch_size=16", "learning_rate=1e-2", "lr_scheduler_type=constant",
                    "ppo_epochs=4", "ppo_kl_coef=0.01", "lora_rank=8", "plot_loss=false")
    rewards = rewards_of(records)
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.1, (first, last)


@pytest.mark.slow
def test_grpo_learns_a_known_behaviour(tiny_model_dir: Path, tmp_path: Path):
    records = train(tiny_model_dir, tmp_path / "run", "grpo", "reward_funcs=format", CONTAINS_DIGIT, "max_steps=50",
                    "per_device_train_batch_size=16", "num_generations=4", "learning_rate=1e-2",
                    "lr_scheduler_type=constant", "lora_rank=8", "plot_loss=false")
    rewards = rewards_of(records)
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.1, (first, last)
