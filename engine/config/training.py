"""Optimisation, schedule, logging, saving and distributed settings (transformers' names, LLaMA-Factory's keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config.fields import option

SCHEDULERS = ["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay"]
STRATEGIES = ["no", "steps", "epoch"]
REPORT_TO = ["none", "all", "tensorboard", "wandb", "mlflow", "swanlab", "trackio"]
PLACEMENT_STRATEGIES = ["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]
OPTIMIZERS = ["adamw_torch", "adamw_torch_fused", "adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "adafactor",
              "sgd", "adagrad", "lion_32bit", "adamw_torch_4bit"]


@dataclass
class TrainingArguments:
    """How the optimiser runs, and what is logged and saved."""

    output_dir: str | None = option(None, "Run folder (default: saves/<model>/<method>/train_<time>).")
    overwrite_output_dir: bool = option(False, "Allow a run to replace another run's results in output_dir.")
    do_train: bool = option(True, "Train (default: on, unless the config sets only do_predict or do_eval).")
    do_eval: bool = option(False, "Evaluate on the held-out data after training.")
    do_predict: bool = option(False, "Generate predictions on the eval data.")
    learning_rate: float = option(5e-5, "Peak learning rate.", min=0.0, exclusive_min=True, step=1e-6)
    num_train_epochs: float = option(3.0, "Passes over the training data.", min=0.0, exclusive_min=True, step=0.5)
    max_steps: int = option(-1, "Stop after this many optimiser steps (-1: use epochs).", min=-1)
    per_device_train_batch_size: int = option(8, "Examples per device per step.", min=1, max=1024)
    per_device_eval_batch_size: int = option(8, "Examples per device per evaluation step.", min=1, max=1024)
    gradient_accumulation_steps: int = option(1, "Batches accumulated before each optimiser step.", min=1, max=1024)
    max_grad_norm: float = option(1.0, "Clip gradients to this norm (0: no clipping).", min=0.0, step=0.1)
    weight_decay: float = option(0.0, "Weight decay.", min=0.0, step=0.01)
    adam_beta1: float = option(0.9, "Adam beta1.", min=0.0, max=1.0)
    adam_beta2: float = option(0.999, "Adam beta2.", min=0.0, max=1.0)
    adam_epsilon: float = option(1e-8, "Adam epsilon.", min=0.0, exclusive_min=True)
    optim: str = option("adamw_torch", "Optimiser.", choices=OPTIMIZERS)
    lr_scheduler_type: str = option("linear", "Learning-rate schedule.", choices=SCHEDULERS)
    lr_scheduler_kwargs: dict[str, Any] | None = option(None, "Extra arguments of the schedule.")
    warmup_steps: int = option(0, "Steps of linear warm-up.", min=0)
    warmup_ratio: float = option(0.0, "Warm-up as a share of all steps (used when warmup_steps is 0).",
                                 min=0.0, max=1.0, step=0.01)
    logging_steps: int = option(5, "Log every N steps.", min=1)
    logging_first_step: bool = option(True, "Log the first step too.")
    save_strategy: str = option("steps", "When to save checkpoints.", choices=STRATEGIES)
    save_steps: int = option(500, "Save a checkpoint every N steps.", min=1)
    save_total_limit: int | None = option(None, "Keep at most this many checkpoints.", min=1)
    save_only_model: bool = option(False, "Checkpoints hold only weights (cannot resume the optimiser).")
    eval_strategy: str = option("no", "When to evaluate during training.", choices=STRATEGIES)
    eval_steps: int | None = option(None, "Evaluate every N steps (default: logging_steps).", min=1)
    load_best_model_at_end: bool = option(False, "Load the best checkpoint when training ends.")
    metric_for_best_model: str | None = option(None, "Metric that decides the best checkpoint (default: loss).")
    greater_is_better: bool | None = option(None, "Whether a larger metric is better.")
    early_stopping_patience: int | None = option(None, "Stop after this many evaluations without improvement.",
                                                 min=1)
    bf16: bool = option(False, "Mixed precision with bfloat16.")
    fp16: bool = option(False, "Mixed precision with float16 (GPU only).")
    tf32: bool | None = option(None, "Allow TF32 matrix maths on Ampere GPUs.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass to save memory.")
    seed: int = option(42, "Random seed.", min=0)
    data_seed: int | None = option(None, "Seed of the data sampler (default: seed).", min=0)
    report_to: str = option("none", "Experiment tracker.", choices=REPORT_TO)
    run_name: str | None = option(None, "Name of the run in the tracker.")
    dataloader_num_workers: int = option(0, "Worker processes loading batches.", min=0)
    dataloader_pin_memory: bool = option(True, "Pin host memory for faster GPU transfer.")
    group_by_length: bool = option(False, "Batch examples of similar length together (less padding; padding-free "
                                   "and packed batches have little or none).")
    remove_unused_columns: bool = option(False, "Drop dataset columns the model does not take.")
    resume_from_checkpoint: str | bool | None = option(None, "Checkpoint folder to resume, or true for the latest.")
    predict_with_generate: bool = option(False, "Generate text when predicting.")
    use_cpu: bool = option(False, "Train on the CPU even when a GPU is present.")
    torch_compile: bool = option(False, "Compile the model with torch.compile.")
    label_smoothing_factor: float = option(0.0, "Label smoothing.", min=0.0, max=1.0)
    ddp_timeout: int = option(1800, "Seconds before a distributed operation times out.", min=1)
    ddp_find_unused_parameters: bool | None = option(None, "DDP: look for parameters that got no gradient.")
    ddp_backend: str | None = option(None, "DDP backend.", choices=[None, "nccl", "gloo", "mpi", "ccl", "hccl"])
    deepspeed: str | None = option(None, "DeepSpeed config file (e.g. examples/deepspeed/ds_z2_config.json).")
    fsdp: str | None = option(None, "FSDP options, as transformers takes them.")
    fsdp_config: str | None = option(None, "FSDP config file.")
    push_to_hub: bool = option(False, "Upload the result to the hub.")
    hub_model_id: str | None = option(None, "Hub repository for push_to_hub.")
    save_safetensors: bool = option(True, "Accepted for old configs; weights are always safetensors.")
    logging_dir: str | None = option(None, "Accepted for old configs; trackers log under output_dir.")
    include_num_input_tokens_seen: bool = option(True, "Count input tokens seen.")
    ray_num_workers: int = option(1, "Ray Train workers, one process each (with USE_RAY=1).", min=1)
    resources_per_worker: dict[str, Any] | None = option(None, "Ray resources of each worker, e.g. {GPU: 1} "
                                                         "(default: one GPU when the cluster has GPUs, else one CPU).")
    placement_strategy: str = option("PACK", "How Ray places the workers on nodes.", choices=PLACEMENT_STRATEGIES)
    ray_init_kwargs: dict[str, Any] | None = option(None, "Arguments of ray.init, e.g. {address: auto}.")
    ray_storage_path: str = option("./saves", "Where Ray keeps its own results (a folder all nodes see).")
    ray_run_name: str | None = option(None, "Name of the Ray Train run (default: the run folder's name).")
