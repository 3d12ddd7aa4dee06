"""The pieces of PPO (Ziegler et al. 2019, as TRL's PPOTrainer ran it until 1.12), small enough to read.

Rollout: sample a response per prompt, score it once at its end. Per token: the policy's and the reference's
log-probs (the same model with its LoRA adapter disabled) and the value head's estimate. The reward of a token is
`-kl_coef * (logp - ref_logp)`, plus the score on the last token; GAE turns rewards and values into advantages and
returns; the clipped policy loss and the clipped value loss train the adapter and the value head together.
`ppo_step` runs one such round; `engine.train.ppo` is the workflow around it (data, checkpoints, log).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


class ValueHead(nn.Module):
    """A linear layer from the last hidden state to a scalar value estimate."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.summary = nn.Linear(hidden_size, 1)
        # Zero at first: a random head's noise would swamp the advantages until it has learnt the scores' scale.
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Values of shape (batch, length)."""
        return self.summary(hidden.to(self.summary.weight.dtype)).squeeze(-1)


@dataclass
class Rollout:
    """One batch of sampled responses and what PPO needs about them (tensors of shape (batch, response length))."""

    queries: torch.Tensor  # left-padded prompt ids (batch, prompt length)
    query_mask: torch.Tensor
    responses: torch.Tensor  # right-padded response ids, the stop token included
    response_mask: torch.Tensor
    logprobs: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None
    values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None
    returns: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> Rollout:
        """The rows at `index` (a mini-batch)."""
        return Rollout(**{name: None if value is None else value[index] for name, value in vars(self).items()})


@dataclass
class PPOState:
    """Everything a checkpoint must hold to continue exactly where it stopped."""

    model: Any
    value_head: Any
    optimizer: Any
    scheduler: Any
    kl: Any  # ppo_core.KLController
    moments: Any  # ppo_core.RunningMoments
    step: int = 0


class KLController:
    """The KL penalty's weight: fixed, or adapted towards a target KL per sequence (`target` > 0)."""

    def __init__(self, coef: float, target: float, horizon: int = 10000) -> None:
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        """Raise the weight when the KL runs above the target, lower it when below (at most ±20% error)."""
        if self.target > 0:
            error = max(-0.2, min(0.2, kl / self.target - 1))
            self.coef *= 1 + error * n_samples / self.horizon


class RunningMoments:
    """Running mean and standard deviation of the scores (Chan et al.'s parallel update), for `ppo_score_norm`."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    def update(self, values: torch.Tensor) -> None:
        """Fold a batch of scores into the statistics."""
        n = values.numel()
        delta = values.mean().item() - self.mean
        total = self.count + n
        batch_var = values.var(unbiased=False).item() if n > 1 else 0.0
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        """Scores as z-values under the statistics so far."""
        return (values - self.mean) / (math.sqrt(self.var) + 1e-8)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over the positions where `mask` is 1."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over the masked positions (and centre on zero with `shift_mean`)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), padded on the left so every prompt ends where generation starts."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return ids, mask


@torch.no_grad()
def generate(model: Any, prompts: list[list[int]], *, pad_id: int, stop_ids: list[int],
             max_new_tokens: int) -> Rollout:
    """Sample one response per prompt from the policy itself (temperature 1, no top-k or top-p)."""
    device = next(model.parameters()).device
    queries, query_mask = (tensor.to(device) for tensor in left_pad(prompts, pad_id))
    model.eval()
    output = model.generate(input_ids=queries, attention_mask=query_mask, do_sample=True, temperature=1.0, top_p=1.0,
                            top_k=0, max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id,
                            use_cache=True)
    responses = output[:, queries.shape[1]:]
    is_stop = torch.isin(responses, torch.tensor(stop_ids, device=device))
    # Keep everything up to and including the first stop token: the model must learn to end its answer.
    after_stop = (is_stop.cumsum(dim=1) - is_stop.long()) > 0
    response_mask = (~after_stop).long()
    responses = responses.masked_fill(after_stop, pad_id)
    return Rollout(queries, query_mask, responses, response_mask)


def forward(model: Any, value_head: ValueHead | None, rollout: Rollout,
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per response token: log-prob of the sampled token, value estimate (None without a head), entropy."""
    input_ids = torch.cat([rollout.queries, rollout.responses], dim=1)
    attention_mask = torch.cat([rollout.query_mask, rollout.response_mask], dim=1)
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # as generate() numbered the left-padded rows
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   output_hidden_states=value_head is not None, use_cache=False)
    start, length = rollout.queries.shape[1] - 1, rollout.responses.shape[1]
    logits = output.logits[:, start:start + length].float()  # position t predicts response token t
    log_probs = torch.log_softmax(logits, dim=-1)
    token_logprobs = log_probs.gather(-1, rollout.responses.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    values = None
    if value_head is not None:
        values = value_head(output.hidden_states[-1][:, start:start + length])
    return token_logprobs, values, entropy


def token_rewards(scores: torch.Tensor, rollout: Rollout, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards, per-token KL): the KL penalty on every token, plus the score on each response's last token."""
    mask = rollout.response_mask.float()
    kl = (rollout.logprobs - rollout.ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (rollout.response_mask.sum(dim=1) - 1).clamp(min=0)
    rewards[torch.arange(len(scores), device=rewards.device), last] += scores.to(rewards.device)
    return rewards, kl


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) by generalised advantage estimation; advantages are whitened."""
    mask = mask.float()
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    returns = advantages + values
    return whiten(advantages, mask) * mask, returns


def ppo_losses(logprobs: torch.Tensor, values: torch.Tensor, batch: Rollout, cliprange: float,
               cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(policy loss, value loss, share of clipped ratios): PPO's clipped surrogate and clipped value regression."""
    mask, advantages = batch.response_mask.float(), batch.advantages
    ratio = torch.exp(logprobs - batch.logprobs)
    clipped_ratio = torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    policy_loss = masked_mean(torch.max(-advantages * ratio, -advantages * clipped_ratio), mask)
    old_values, returns = batch.values, batch.returns
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    value_loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped_values - returns) ** 2), mask)
    clipfrac = masked_mean(((ratio - 1).abs() > cliprange).float(), mask).item()
    return policy_loss, value_loss, clipfrac


# ---------------------------------------------------------------- one PPO step


def ppo_step(config: Any, state: PPOState, prompt_ids: list[list[int]], examples: list[dict], rewards: list,
             tokenizer: Any, stop_ids: list[int]) -> dict[str, float]:
    """Sample, score, compute advantages and optimise on one batch of prompts; returns the step's metrics."""
    from engine.train.rewards import Completions, score_completions

    ft, model = config.finetuning, state.model
    rollout = generate(model, prompt_ids, pad_id=tokenizer.pad_token_id, stop_ids=stop_ids,
                       max_new_tokens=ft.max_completion_length)
    texts = decode_responses(rollout, tokenizer, stop_ids)
    raw, reward_means = score_completions(rewards, Completions(examples, texts))
    scores = torch.tensor(raw, dtype=torch.float32)
    if ft.ppo_score_norm:
        state.moments.update(scores)
        scores = state.moments.normalize(scores)
    with torch.no_grad():
        rollout.logprobs, rollout.values, _ = forward(model, state.value_head, rollout)
        with model.disable_adapter():
            rollout.ref_logprobs, _, _ = forward(model, None, rollout)
    token_reward, kl = token_rewards(scores, rollout, state.kl.coef)
    if ft.ppo_whiten_rewards:
        token_reward = whiten(token_reward, rollout.response_mask.float(), shift_mean=False)
    rollout.advantages, rollout.returns = compute_gae(token_reward, rollout.values, rollout.response_mask,
                                                      ft.ppo_gamma, ft.ppo_lam)
    lr = state.scheduler.get_last_lr()[0]
    losses = optimise(config, state, rollout)
    mean_kl = kl.sum(dim=1).mean().item()
    kl_coef = state.kl.coef
    state.kl.update(mean_kl, len(prompt_ids))
    state.scheduler.step()
    return {**losses, "lr": lr, "reward": sum(raw) / len(raw), "kl": mean_kl, "kl_coef": kl_coef,
            "response_length": rollout.response_mask.sum(dim=1).float().mean().item(), **reward_means}


def decode_responses(rollout: Rollout, tokenizer: Any, stop_ids: list[int]) -> list[str]:
    """The completions as text, without the stop token (what the rewards judge)."""
    responses = rollout.responses
    stops = torch.isin(responses, torch.tensor(stop_ids, device=responses.device))
    return tokenizer.batch_decode(responses.masked_fill(stops, tokenizer.pad_token_id), skip_special_tokens=True)


def optimise(config: Any, state: PPOState, rollout: Rollout) -> dict[str, float]:
    """`ppo_epochs` passes over the rollout in mini-batches (one optimiser step each); returns the mean losses."""
    t, ft = config.training, config.finetuning
    micro, accumulation = t.per_device_train_batch_size, t.gradient_accumulation_steps
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    totals: dict[str, float] = {"loss": 0.0, "policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "clipfrac": 0.0}
    count = 0
    for _ in range(ft.ppo_epochs):
        order = torch.randperm(rollout.responses.shape[0], device=rollout.responses.device)
        for mini_batch in order.split(micro * accumulation):
            state.optimizer.zero_grad()
            for index in mini_batch.split(micro):
                batch = rollout.select(index)
                logprobs, values, entropy = forward(state.model, state.value_head, batch)
                policy_loss, value_loss, clipfrac = ppo_losses(logprobs, values, batch, ft.ppo_cliprange,
                                                               ft.ppo_cliprange_value)
                loss = policy_loss + ft.ppo_vf_coef * value_loss
                (loss / math.ceil(len(mini_batch) / micro)).backward()
                for key, value in (("loss", loss.item()), ("policy_loss", policy_loss.item()), ("clipfrac", clipfrac),
                                   ("value_loss", value_loss.item()),
                                   ("entropy", masked_mean(entropy, batch.response_mask.float()).item())):
                    totals[key] += value
                count += 1
            if t.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            state.optimizer.step()
    return {key: value / max(count, 1) for key, value in totals.items()}
