"""Which optimizer methods, SFT losses and early-stopping keys can run together, checked before anything loads.

Torch-free: validation calls these with the parsed config, the same for the studio and the command line. Each
optimizer method is one record (`OPTIMIZER_METHODS`) that says what it needs; the checks read only the records.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import RunConfig
from engine.config.finetuning import FinetuningArguments
from engine.errors import ConfigError, Setting

ADAMW_NAMES = ("adamw_torch", "adamw_torch_fused")


@dataclass(frozen=True)
class OptimizerMethod:
    """A method that builds its own optimizer (engine.model.optimizers), and what it needs to run."""

    key: str  # the config key that turns it on
    name: str  # how messages name it
    full_weights: bool  # it optimises the model's own weights, so LoRA or OFT adapters are not for it
    layerwise_key: str | None = None  # its layer-wise switch: updates inside the backward pass, no accumulation
    deepspeed: bool = True  # False: it needs whole weight matrices, which DeepSpeed partitions and flattens
    adamw_only: bool = False  # it is an AdamW variant of its own: `optim` must name AdamW


OPTIMIZER_METHODS: tuple[OptimizerMethod, ...] = (
    OptimizerMethod("use_galore", "GaLore", full_weights=True, layerwise_key="galore_layerwise", deepspeed=False),
    OptimizerMethod("use_apollo", "APOLLO", full_weights=True, layerwise_key="apollo_layerwise", deepspeed=False,
                    adamw_only=True),
    OptimizerMethod("use_badam", "BAdam", full_weights=True),
    OptimizerMethod("loraplus_lr_ratio", "LoRA+", full_weights=False),
    # Adam-mini shares one learning rate per attention head or neuron, blocks that adapters do not have.
    OptimizerMethod("use_adam_mini", "Adam-mini", full_weights=True, adamw_only=True),
    OptimizerMethod("use_muon", "Muon", full_weights=False, deepspeed=False, adamw_only=True),
)

SFT_LOSS_KEYS = ("use_dft_loss", "use_asft_loss", "use_eaft_loss")


def chosen_optimizer_methods(ft: FinetuningArguments) -> list[OptimizerMethod]:
    """The optimizer methods a config turns on (LoRA+ by setting its ratio)."""
    return [m for m in OPTIMIZER_METHODS if getattr(ft, m.key) not in (None, False)]


def check_optimizer_choice(config: RunConfig) -> None:
    """At most one optimizer method, on weights it can train, with an optimizer, accumulation and DeepSpeed it
    works with."""
    ft, train = config.finetuning, config.training
    chosen = chosen_optimizer_methods(ft)
    if len(chosen) > 1:
        raise ConfigError("optimizer_methods_conflict", first=Setting(chosen[0].key), second=Setting(chosen[1].key))
    if not chosen:
        return
    method = chosen[0]
    if method.key == "loraplus_lr_ratio" and ft.finetuning_type != "lora":
        raise ConfigError("loraplus_needs_lora", method=ft.finetuning_type)
    if method.full_weights and ft.finetuning_type not in ("full", "freeze"):
        raise ConfigError("optimizer_needs_full_weights", method=method.name, key=Setting(method.key),
                          finetuning_type=ft.finetuning_type)
    if method.adamw_only and train.optim not in ADAMW_NAMES:
        raise ConfigError("optimizer_unsupported", optim=train.optim, method=method.name,
                          supported=", ".join(ADAMW_NAMES))
    if method.layerwise_key and getattr(ft, method.layerwise_key) and train.gradient_accumulation_steps != 1:
        raise ConfigError("layerwise_accumulation", method=method.name, key=Setting(method.layerwise_key),
                          steps=train.gradient_accumulation_steps)
    if not method.deepspeed and train.deepspeed:
        raise ConfigError("optimizer_with_deepspeed", method=method.name, key=Setting(method.key))


def check_sft_loss_choice(config: RunConfig) -> None:
    """DFT, ASFT and EAFT: one at a time, for stage sft, and not beside label smoothing (which they replace)."""
    ft = config.finetuning
    chosen = [key for key in SFT_LOSS_KEYS if getattr(ft, key)]
    if len(chosen) > 1:
        raise ConfigError("sft_losses_conflict", first=Setting(chosen[0]), second=Setting(chosen[1]))
    if not chosen:
        return
    if ft.stage != "sft":
        raise ConfigError("sft_loss_needs_sft", key=Setting(chosen[0]), stage=ft.stage)
    if config.training.label_smoothing_factor:
        raise ConfigError("sft_loss_with_label_smoothing", key=Setting(chosen[0]),
                          value=config.training.label_smoothing_factor)


def early_stopping_patience(config: RunConfig) -> int | None:
    """How many evaluations without improvement stop training: early_stopping_steps (LLaMA-Factory's name) or
    early_stopping_patience, which mean the same; None when neither is set."""
    return config.finetuning.early_stopping_steps or config.training.early_stopping_patience


def check_early_stopping(config: RunConfig) -> None:
    """early_stopping_steps and early_stopping_patience may both be set only to the same value."""
    steps, patience = config.finetuning.early_stopping_steps, config.training.early_stopping_patience
    if steps and patience and steps != patience:
        raise ConfigError("early_stopping_conflict", steps=steps, patience=patience)
