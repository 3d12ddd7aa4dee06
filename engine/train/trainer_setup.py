"""What every stage shares: our config → transformers' TrainingArguments, callbacks, and the train/save epilogue."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError, Setting
from engine.model.methods import METHODS
from engine.runfolder import merge_all_results, write_results
from engine.train.losses import loss_function
from engine.train.method_checks import chosen_optimizer_methods, early_stopping_patience
from engine.train.reference import load_reference_model

logger = logging.getLogger(__name__)


def is_main_process() -> bool:
    """Rank 0 (or a single process): the only one that writes the run folder."""
    return int(os.environ.get("RANK", "0")) == 0


def training_kwargs(config: RunConfig) -> dict[str, Any]:
    """Keyword arguments for transformers' TrainingArguments (or a TRL config), translated from our keys."""
    import torch

    t, ft = config.training, config.finetuning
    on_cpu = t.use_cpu or not torch.cuda.is_available()
    warmup: float = t.warmup_steps
    if not warmup and t.warmup_ratio:  # transformers 5 reads a float below 1 as a ratio
        warmup = min(t.warmup_ratio, 0.999999)
    eval_on = t.eval_strategy != "no"
    kwargs: dict[str, Any] = {
        "output_dir": t.output_dir,
        "do_train": t.do_train,
        "do_eval": t.do_eval or eval_on,
        "do_predict": t.do_predict,
        "learning_rate": t.learning_rate,
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps,
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "per_device_eval_batch_size": t.per_device_eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "max_grad_norm": t.max_grad_norm,
        "weight_decay": t.weight_decay,
        "adam_beta1": t.adam_beta1,
        "adam_beta2": t.adam_beta2,
        "adam_epsilon": t.adam_epsilon,
        "optim": t.optim,
        "lr_scheduler_type": t.lr_scheduler_type,
        "lr_scheduler_kwargs": t.lr_scheduler_kwargs or {},
        "warmup_steps": warmup,
        "logging_steps": t.logging_steps,
        "logging_first_step": t.logging_first_step,
        "save_strategy": t.save_strategy,
        "save_steps": t.save_steps,
        "save_total_limit": t.save_total_limit,
        "save_only_model": t.save_only_model,
        "eval_strategy": t.eval_strategy,
        "eval_steps": t.eval_steps or (t.logging_steps if eval_on else None),
        "load_best_model_at_end": t.load_best_model_at_end,
        "metric_for_best_model": t.metric_for_best_model,
        "greater_is_better": t.greater_is_better,
        # TRL's configs default to bf16 and gradient checkpointing even on CPU: always say what we mean.
        "bf16": t.bf16 and not ft.pure_bf16,  # pure_bf16 loads bf16 weights and needs no autocast
        "fp16": t.fp16,
        "tf32": t.tf32,
        "activation_checkpointing": t.gradient_checkpointing and not config.model.disable_gradient_checkpointing,
        "seed": t.seed,
        "data_seed": t.data_seed,
        "report_to": transformers_trackers(config),
        "run_name": t.run_name,
        "dataloader_num_workers": t.dataloader_num_workers,
        "dataloader_pin_memory": t.dataloader_pin_memory and not on_cpu,
        "train_sampling_strategy": "group_by_length" if t.group_by_length else "random",
        "remove_unused_columns": t.remove_unused_columns,
        "use_cpu": on_cpu,  # also selects gloo for DDP on CPU
        "torch_compile": t.torch_compile,
        "label_smoothing_factor": t.label_smoothing_factor,
        "ddp_timeout": t.ddp_timeout,
        "ddp_find_unused_parameters": (t.ddp_find_unused_parameters if t.ddp_find_unused_parameters is not None
                                       else False if METHODS[ft.finetuning_type].peft_type else None),
        "ddp_backend": t.ddp_backend,
        "deepspeed": t.deepspeed,
        "push_to_hub": t.push_to_hub,
        "hub_model_id": t.hub_model_id,
        "neftune_noise_alpha": ft.neftune_noise_alpha,
        "include_num_input_tokens_seen": "non_padding" if t.include_num_input_tokens_seen else "no",
        # Under the studio the live chart is the progress bar: keep tqdm's redraws out of running_log.txt.
        "disable_tqdm": bool(os.environ.get("STUDIO_RUNNING_LOG")),
    }
    kwargs.update(fsdp_arguments(config))
    if ft.disable_shuffling:
        kwargs["train_sampling_strategy"] = "sequential"
    if kwargs["activation_checkpointing"]:
        kwargs["activation_checkpointing_kwargs"] = {"use_reentrant": config.model.use_reentrant_gc}
    # transformers arguments we have no field for go through as the user wrote them (the user's value wins).
    kwargs.update(config.passthrough)
    if "gradient_checkpointing_kwargs" in config.passthrough:  # the deprecated name of the same argument
        kwargs.pop("activation_checkpointing_kwargs", None)
    return kwargs


# LLaMA-Factory's `fsdp` words → transformers' FSDP2 settings (`auto_wrap` is its default: wrap each decoder block).
FSDP_WORDS = {"full_shard": ("reshard_after_forward", True), "shard_grad_op": ("reshard_after_forward", False),
              "offload": ("cpu_offload", True), "auto_wrap": None}


def check_fsdp(config: RunConfig) -> None:
    """Refuse FSDP with an optimizer method of our own (the Trainer takes no ready-made optimizer with FSDP) and
    without a CUDA GPU: accelerate runs CPU processes as DDP and drops the FSDP plugin (PyTorch's FSDP2 itself
    works over gloo; accelerate 1.16 enables it only for GPU-like devices)."""
    import torch

    t = config.training
    if not _fsdp_on(t.fsdp):
        return
    for method in chosen_optimizer_methods(config.finetuning):
        raise ConfigError("optimizer_with_fsdp", method=method.name, key=Setting(method.key))
    if t.use_cpu or not torch.cuda.is_available():
        raise ConfigError("fsdp_needs_gpu", key=Setting("fsdp"), value=str(t.fsdp))


def _fsdp_on(value: Any) -> bool:
    return value not in (None, "", False) and str(value).strip().lower() not in ("false", "no", "off", "0")


def fsdp_arguments(config: RunConfig) -> dict[str, Any]:
    """`fsdp` and `fsdp_config` for TrainingArguments: FSDP2 (`version: 2` unless the config file says otherwise),
    with LLaMA-Factory's `fsdp` words (`full_shard auto_wrap`, `shard_grad_op`, `offload`) turned into FSDP2
    settings; `fsdp_config` may name a JSON or YAML file. {} when `fsdp` is off."""
    import yaml

    t = config.training
    if not _fsdp_on(t.fsdp):
        return {}
    check_fsdp(config)
    settings: dict[str, Any] = {}
    if t.fsdp_config:
        with open(t.fsdp_config, encoding="utf-8") as file:  # JSON is YAML too
            settings = {str(k).removeprefix("fsdp_"): v for k, v in (yaml.safe_load(file) or {}).items()}
    settings.setdefault("version", 2)
    words = [] if str(t.fsdp).strip().lower() in ("true", "yes", "on", "1") else str(t.fsdp).split()
    if any(word not in FSDP_WORDS for word in words):  # e.g. hybrid_shard with version 1: transformers judges
        return {"fsdp": t.fsdp, "fsdp_config": settings}
    for word in words:
        if FSDP_WORDS[word]:
            settings.setdefault(*FSDP_WORDS[word])
    return {"fsdp": True, "fsdp_config": settings}


def compute_dtype(config: RunConfig) -> Any:
    """The dtype frozen weights load in: bf16/fp16 on a GPU when mixed precision is on, else None (float32)."""
    import torch

    if not torch.cuda.is_available() or config.training.use_cpu:
        return None
    if config.training.bf16 or config.finetuning.pure_bf16:
        return torch.bfloat16
    return torch.float16 if config.training.fp16 else None


def build_training_arguments(config: RunConfig, **overrides: Any) -> Any:
    """transformers.TrainingArguments for the run."""
    from transformers import TrainingArguments

    return TrainingArguments(**{**training_kwargs(config), **overrides})


def transformers_trackers(config: RunConfig) -> list[str]:
    """`report_to` for transformers: the chosen tracker once its package is found (`all`: every one installed).

    SwanLab is left out: it runs through our own callback with the swanlab_* keys (`make_callbacks`).
    """
    import importlib.util

    chosen = config.training.report_to
    if chosen == "none":
        return []
    if chosen == "all":
        from transformers.integrations import get_available_reporting_integrations

        return [name for name in get_available_reporting_integrations() if name != "swanlab"]
    if importlib.util.find_spec(chosen) is None:
        raise ConfigError("tracker_missing", tracker=chosen, key=Setting("report_to"))
    return [] if chosen == "swanlab" else [chosen]


def uses_swanlab(config: RunConfig) -> bool:
    """Whether the run logs to SwanLab: `use_swanlab`, `report_to: swanlab`, or `report_to: all` with it installed."""
    import importlib.util

    chosen = config.training.report_to
    return (config.finetuning.use_swanlab or chosen == "swanlab"
            or (chosen == "all" and importlib.util.find_spec("swanlab") is not None))


def make_callbacks(config: RunConfig, run_dir: Path, abort: Any) -> list[Any]:
    """The log writer, the abort handler, early stopping and SwanLab when asked."""
    from engine.train.callbacks import EarlyStopping, LogCallback, place_trackio_logs, swanlab_callback

    callbacks = [LogCallback(run_dir), abort]
    patience = early_stopping_patience(config)
    if patience:
        callbacks.append(EarlyStopping(patience, config.training.metric_for_best_model,
                                       config.training.greater_is_better))
    if uses_swanlab(config):
        callbacks.append(swanlab_callback(config, run_dir))
    if "trackio" in transformers_trackers(config):  # transformers adds its callback; the logs go in the run folder
        place_trackio_logs(run_dir)
    return callbacks


def train_and_save(trainer: Any, config: RunConfig, run_dir: Path, resume: str | None) -> dict[str, Any]:
    """Train (resuming when asked), save the final weights, metrics and curves; evaluate when asked.

    The files are LLaMA-Factory's: trainer_state.json, train_results.json, eval_results.json, all_results.json
    (both merged) and training_<metric>.png.
    """
    main = is_main_process()
    results: dict[str, Any] = {}
    if config.training.do_train:
        output = trainer.train(resume_from_checkpoint=resume)
        trainer.save_model()
        trainer.save_state()
        results.update(output.metrics)
        trainer.log_metrics("train", output.metrics)
        if main:
            write_results(run_dir, "train", output.metrics)
    if trainer.eval_dataset is not None and (config.training.do_eval or config.training.eval_strategy != "no"):
        metrics = trainer.evaluate()
        results.update(metrics)
        trainer.log_metrics("eval", metrics)
        if main:
            write_results(run_dir, "eval", metrics)
    if main and config.finetuning.plot_loss:
        from engine.plotting import plot_loss

        plot_loss(run_dir, config.finetuning.stage)
    return results


def save_resolved_config(config: RunConfig, run_dir: Path) -> None:
    """Rewrite config.yaml once the stage has resolved a default (e.g. the template)."""
    from engine.config import save_config

    if is_main_process():
        save_config(config, Path(run_dir) / "config.yaml")


def write_all_results(run_dir: Path, results: dict[str, Any]) -> None:
    """Merge final metrics into all_results.json (a stage without a Trainer split of its own, such as PPO)."""
    merge_all_results(run_dir, results)


def batch_layout(config: RunConfig, model: Any) -> dict[str, bool]:
    """How pt/sft batches are laid out: `padding_free` (one row, no padding), `select_logits` (LM head only where
    the loss is taken) and `varlen_kwargs` (example boundaries for FlashAttention). None changes the loss; each is
    used only where the model supports it.

    Padding-free is on by default when examples in one row stay apart and attention costs what the examples cost:
    FlashAttention's varlen kernels, or on the CPU sdpa run once per example (on a GPU, sdpa over a whole packed
    row beats many small per-example calls). `padding_free: true` also flattens batches for sdpa and eager.
    """
    import torch

    from engine.model.boosters import (
        VARLEN_ATTENTION,
        accepts_selected_logits,
        base_model,
        enable_segment_attention,
        supports_packed_sequences,
    )

    wanted = config.data.padding_free
    packed = bool(config.data.packing) or wanted is not False
    on_cpu = config.training.use_cpu or not torch.cuda.is_available()
    if packed and on_cpu and supports_packed_sequences(model):
        enable_segment_attention(model)  # packed rows and padding-free batches then cost what their examples cost
    supported = supports_packed_sequences(model)
    attention = str(base_model(model).config._attn_implementation)
    flash = attention.startswith("flash_attention")
    if config.data.packing and flash and wanted is False:
        # FlashAttention keeps packed examples apart only in a single row (transformers' `_is_packed_sequence`).
        logger.warning("padding_free: false is ignored: packing with FlashAttention needs padding-free batches.")
        wanted = True
    if wanted and not supported:
        logger.warning("padding_free: this model cannot keep examples in one row apart (attention %s); batches are "
                       "padded instead.", attention)
    if wanted is None:
        wanted = attention in VARLEN_ATTENTION
    m, ft = config.model, config.finetuning
    # Liger's fused loss and Unsloth never build the logits; label smoothing needs all of them.
    select = (not (m.enable_liger_kernel or m.use_unsloth) and config.training.label_smoothing_factor == 0
              and accepts_selected_logits(model))
    padding_free = bool(wanted and supported)
    layout = {"padding_free": padding_free, "select_logits": select, "varlen_kwargs": padding_free and flash}
    logger.info("Batch layout: %s (attention: %s, stage %s).", layout, attention, ft.stage)
    return layout


def build_collator(config: RunConfig, model: Any, tokenizer: Any) -> Any:
    """The pt/sft collator for this run's batch layout."""
    from engine.data.preprocess import SequenceCollator

    return SequenceCollator(pad_token_id=tokenizer.pad_token_id, **batch_layout(config, model))


def build_trainer(config: RunConfig, model: Any, tokenizer: Any, train_set: Any, eval_set: Any, *,
                  run_dir: Path, abort: Any, collator: Any = None, **extra: Any) -> Any:
    """transformers' Trainer with our arguments, optimiser (LoRA+, GaLore, APOLLO, BAdam, Adam-mini or Muon when
    asked), SFT loss (DFT, ASFT or EAFT when asked), collator and callbacks."""
    from transformers import Trainer

    from engine.model.optimizers import create_optimizer, updates_in_backward

    ft = config.finetuning
    collator = collator or build_collator(config, model, tokenizer)
    # Layer-wise GaLore and APOLLO step inside the backward pass: no accumulation, no global clipping.
    overrides: dict[str, Any] = {"max_grad_norm": 0.0} if updates_in_backward(ft) else {}
    if "compute_metrics" not in extra:  # nothing reads the predictions: keep evaluation from gathering the logits
        overrides["prediction_loss_only"] = True
    if getattr(collator, "padding_free", False) and config.training.include_num_input_tokens_seen:
        overrides["include_num_input_tokens_seen"] = "all"  # no padding to leave out (and pad may equal eos)
    args = build_training_arguments(config, **overrides)
    optimizer = create_optimizer(model, args.learning_rate, args.weight_decay, ft,
                                 {"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon},
                                 optim=config.training.optim)
    reference = None
    if ft.stage == "sft" and ft.use_asft_loss:
        reference = load_reference_model(config, tokenizer, compute_dtype(config))
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=make_callbacks(config, run_dir, abort),
        optimizers=(optimizer, None),
        compute_loss_func=loss_function(config, model, reference),
        **extra,
    )
    if reference is not None and not getattr(reference, "is_quantized", False):
        reference.to(trainer.args.device)  # a quantized reference was placed when it loaded
    if ft.use_badam:
        _attach_badam(trainer, ft.badam_mode)
    return trainer


def _attach_badam(trainer: Any, mode: str) -> None:
    """BAdam switches blocks from a callback; its ratio mode needs its own gradient clipping."""
    from types import MethodType

    import badam

    trainer.add_callback(badam.BAdamCallback)
    if mode == "ratio":
        trainer.accelerator.clip_grad_norm_ = MethodType(badam.clip_grad_norm_old_version, trainer.accelerator)
