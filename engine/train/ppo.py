"""PPO: a LoRA policy with a value head, trained on its own samples against the chosen rewards.

TRL removed its PPOTrainer in 1.13, so the loop is ours (the parts are in `ppo_core`):
tokenizer → template → prompts → rewards → model + value head → optimiser → per step: sample, score,
advantages, `ppo_epochs` × `ppo_buffer_size` clipped updates, log → checkpoints (save_steps, abort) → save.
Dropout stays off throughout, so new and old log-probs agree until the weights move.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.atomic_write import write_json_atomic
from engine.config import RunConfig
from engine.jobs import progress_line
from engine.runfolder import list_checkpoints

if TYPE_CHECKING:
    from engine.train.ppo_core import PPOState

logger = logging.getLogger(__name__)
VALUE_HEAD_FILE = "value_head.safetensors"
STATE_FILE = "ppo_state.json"


@dataclass
class Prompt:
    """One prompt to sample from: its canonical example (with `reference`) and its token ids."""

    example: dict
    ids: list[int]


def run(config: RunConfig, *, run_dir: Path, resume: str | None, abort: Any) -> dict[str, Any]:
    """Optimise the rewards with PPO; returns the final metrics."""
    from transformers import set_seed

    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.runfolder import TrainerLogWriter
    from engine.train.rewards import build_rewards
    from engine.train.trainer_setup import compute_dtype, is_main_process, save_resolved_config

    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    save_resolved_config(config, run_dir)
    prompts = load_prompts(config, template, tokenizer)
    rewards = build_rewards(config)
    set_seed(config.training.seed)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=True,
                       compute_dtype=compute_dtype(config), max_seq_length=config.data.cutoff_len)
    model = to_training_device(model, config)
    total = total_steps(config, len(prompts))
    state = new_state(config, model, total)
    if resume:
        load_checkpoint(state, Path(resume))
    writer = TrainerLogWriter(run_dir)
    if is_main_process() and state.step:
        writer.truncate_after(state.step)  # a resumed run re-logs the steps after its checkpoint
    stop_ids = stop_token_ids(template, tokenizer)
    start = time.monotonic()
    history = train_loop(config, state, prompts, rewards, tokenizer, stop_ids, run_dir, abort, writer, total)
    return save_results(config, state, tokenizer, run_dir, history, time.monotonic() - start)


def load_prompts(config: RunConfig, template: Any, tokenizer: Any) -> list[Prompt]:
    """The training prompts, rendered with the template up to the assistant header (kept within cutoff_len)."""
    from engine.data.pipeline import load_split_examples
    from engine.data.preprocess import require_rows
    from engine.templates import render_prompt_ids
    from engine.train.rewards import rl_examples

    data = config.data
    examples = rl_examples(load_split_examples(config, require_response=False)[0])
    prompts = [Prompt(ex, render_prompt_ids(template, tokenizer, ex["messages"], ex.get("system") or data.default_system,
                                            ex.get("tools"), data.enable_thinking)[-data.cutoff_len:])
               for ex in examples]
    require_rows(prompts, data.dataset or "")
    logger.info("PPO on %d prompts.", len(prompts))
    return prompts


def to_training_device(model: Any, config: RunConfig) -> Any:
    """The GPU when there is one (the Trainer does this for the other stages); quantized models stay put."""
    import torch

    if torch.cuda.is_available() and not config.training.use_cpu and not getattr(model, "hf_device_map", None):
        return model.to("cuda")
    return model


def stop_token_ids(template: Any, tokenizer: Any) -> list[int]:
    """The ids that end a completion: the tokenizer's eos and the template's stop words."""
    ids = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(word) for word in template.stop_words]
    return sorted({i for i in ids if isinstance(i, int) and i != tokenizer.unk_token_id})


def total_steps(config: RunConfig, n_prompts: int) -> int:
    """max_steps, or enough PPO steps for num_train_epochs passes over the prompts."""
    if config.training.max_steps > 0:
        return config.training.max_steps
    return max(1, math.ceil(config.training.num_train_epochs * n_prompts / rollout_size(config)))


def rollout_size(config: RunConfig) -> int:
    """Prompts sampled per PPO step: batch size × gradient accumulation × ppo_buffer_size."""
    t = config.training
    return t.per_device_train_batch_size * t.gradient_accumulation_steps * config.finetuning.ppo_buffer_size


def new_state(config: RunConfig, model: Any, total: int) -> PPOState:
    """A fresh value head, an optimiser over the adapter and the head, the schedule and the KL controller."""
    import torch
    from transformers import get_scheduler

    from engine.model.optimizers import create_optimizer
    from engine.train.ppo_core import KLController, PPOState, RunningMoments, ValueHead

    t, ft = config.training, config.finetuning
    value_head = ValueHead(model.config.get_text_config().hidden_size).to(next(model.parameters()).device)
    adam = {"betas": (t.adam_beta1, t.adam_beta2), "eps": t.adam_epsilon}
    optimizer = create_optimizer(model, t.learning_rate, t.weight_decay, ft, adam, optim=t.optim)
    if optimizer is None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=t.learning_rate, weight_decay=t.weight_decay, **adam)
    optimizer.add_param_group({"params": list(value_head.parameters()), "weight_decay": 0.0})
    warmup = t.warmup_steps or math.ceil(t.warmup_ratio * total)
    scheduler = get_scheduler(t.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=total,
                              scheduler_specific_kwargs=t.lr_scheduler_kwargs or None)
    return PPOState(model, value_head, optimizer, scheduler, KLController(ft.ppo_kl_coef, ft.ppo_target),
                    RunningMoments())


def prompt_indices(n: int, size: int, step: int, seed: int, shuffle: bool) -> list[int]:
    """The prompts of a step: epoch after epoch of (seeded) permutations, cut into steps; resumable by step."""
    import torch

    indices: list[int] = []
    position = step * size
    while len(indices) < size:
        epoch, offset = divmod(position, n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)) if shuffle else range(n)
        take = min(size - len(indices), n - offset)
        indices += [int(i) for i in list(order)[offset:offset + take]]
        position += take
    return indices


def train_loop(config: RunConfig, state: PPOState, prompts: list[Prompt], rewards: list, tokenizer: Any,
               stop_ids: list[int], run_dir: Path, abort: Any, writer: Any, total: int) -> list[dict]:
    """PPO steps until `total` or an abort; logs every logging_steps and saves checkpoints on save_steps."""
    from engine.train import ppo_core
    from engine.train.trainer_setup import is_main_process

    t = config.training
    size, first, start, history = rollout_size(config), state.step, time.monotonic(), []
    while state.step < total:
        batch = [prompts[i] for i in prompt_indices(len(prompts), size, state.step, t.seed,
                                                    not config.finetuning.disable_shuffling)]
        metrics = ppo_core.ppo_step(config, state, [p.ids for p in batch], [p.example for p in batch], rewards,
                                    tokenizer, stop_ids)
        state.step += 1
        metrics["epoch"] = round(state.step * size / len(prompts), 4)
        history.append(metrics)
        elapsed = time.monotonic() - start
        if is_main_process() and (state.step % t.logging_steps == 0 or state.step == total
                                  or (t.logging_first_step and state.step == 1)):
            writer.write({**progress_line(state.step, total, elapsed, first=first), **metrics})
        stopping = abort.requested
        if stopping or (t.save_strategy == "steps" and state.step % t.save_steps == 0) or (
                t.save_strategy != "no" and state.step == total):
            save_checkpoint(config, state, run_dir)
        if stopping:
            logger.info("Abort requested: stopped after step %d.", state.step)
            break
    return history


def save_checkpoint(config: RunConfig, state: PPOState, run_dir: Path) -> Path:
    """checkpoint-N/: adapter, value head, optimiser, schedule, RNG and loop state; old ones beyond the limit go.

    ppo_state.json is written last and atomically: it marks the checkpoint complete (`is_complete_checkpoint`).
    A save that fails half-way removes its folder, so a full disk never leaves a checkpoint that looks resumable.
    """
    import torch
    from safetensors.torch import save_file

    from engine.train.trainer_setup import is_main_process

    folder = Path(run_dir) / f"checkpoint-{state.step}"
    if not is_main_process():
        return folder
    try:
        state.model.save_pretrained(folder)
        save_file(state.value_head.state_dict(), str(folder / VALUE_HEAD_FILE))
        torch.save(state.optimizer.state_dict(), folder / "optimizer.pt")
        torch.save(state.scheduler.state_dict(), folder / "scheduler.pt")
        torch.save({"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all()}, folder / "rng_state.pt")
        write_json_atomic(folder / STATE_FILE, {
            "step": state.step, "kl_coef": state.kl.coef, "score_mean": state.moments.mean,
            "score_var": state.moments.var, "score_count": state.moments.count})
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    limit = config.training.save_total_limit
    if limit:
        for old in list_checkpoints(run_dir)[:-limit]:
            shutil.rmtree(old)
    return folder


def load_checkpoint(state: PPOState, folder: Path) -> None:
    """Continue from checkpoint-N/: weights, optimiser, schedule, RNG and the step count.

    The job has already refused unsafe files (`check_checkpoint_files`); every torch.load here is weights-only too.
    """
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    device = state.value_head.summary.weight.device
    set_peft_model_state_dict(state.model, load_file(str(folder / "adapter_model.safetensors"), device=str(device)))
    state.value_head.load_state_dict(load_file(str(folder / VALUE_HEAD_FILE), device=str(device)))
    state.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
    state.scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng = torch.load(folder / "rng_state.pt", weights_only=True)  # tensors only: nothing in it may run code
    torch.set_rng_state(rng["cpu"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    state.step, state.kl.coef = saved["step"], saved["kl_coef"]
    state.moments.mean, state.moments.var, state.moments.count = (saved["score_mean"], saved["score_var"],
                                                                  saved["score_count"])
    logger.info("Resumed PPO from %s at step %d.", folder, state.step)


def save_results(config: RunConfig, state: PPOState, tokenizer: Any, run_dir: Path, history: list[dict],
                 runtime: float) -> dict[str, Any]:
    """The final adapter, value head and tokenizer, all_results.json and training_loss.png."""
    from safetensors.torch import save_file

    from engine.train.trainer_setup import is_main_process, write_all_results

    results: dict[str, Any] = {"global_step": state.step, "train_runtime": round(runtime, 4),
                               "epoch": history[-1]["epoch"] if history else 0.0}
    if history:
        results["train_loss"] = sum(h["loss"] for h in history) / len(history)
        results["train_reward"] = history[-1]["reward"]
    if is_main_process():
        state.model.save_pretrained(run_dir)
        save_file(state.value_head.state_dict(), str(Path(run_dir) / VALUE_HEAD_FILE))
        tokenizer.save_pretrained(run_dir)
        write_all_results(run_dir, results)
        if config.finetuning.plot_loss:
            from engine.plotting import plot_loss

            plot_loss(run_dir)
    return results
