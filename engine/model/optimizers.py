"""Optimizers the Trainer cannot build from its `optim` name: LoRA+, GaLore, APOLLO, BAdam, Adam-mini and Muon.

`create_optimizer(...)` returns None when none of them is asked for, so the Trainer builds its default. The
Trainer takes the result as `Trainer(optimizers=(optimizer, None))` and still builds the LR schedule around it.
GaLore, APOLLO, BAdam and Adam-mini need their packages (`llm-studio[galore]`, `[apollo]`, `[badam]`,
`[adam-mini]`), imported only here; Muon is torch's own. Which of them may run together is checked before launch
(engine.train.method_checks).
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.errors import ModelError

logger = logging.getLogger(__name__)

ADAMW = ("adamw_torch", "adamw_torch_fused")
ADAMW_8BIT = ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit")


def _base_optimizer_class(optim: str, method: str) -> Any:
    """The optimizer class behind a Trainer `optim` name, for the names these methods support."""
    import torch

    if optim in ADAMW:
        return torch.optim.AdamW
    if optim in ADAMW_8BIT:
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit if optim.startswith("paged") else bnb.optim.AdamW8bit
    if optim == "sgd":
        return torch.optim.SGD
    if optim == "adagrad":
        return torch.optim.Adagrad
    if optim == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor
    raise ModelError("optimizer_unsupported", optim=optim, method=method,
                     supported=", ".join((*ADAMW, *ADAMW_8BIT, "sgd", "adagrad", "adafactor")))


def _accepted_kwargs(cls: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of `kwargs` that `cls` takes (SGD has no betas, Adafactor wants its own eps)."""
    params = inspect.signature(cls.__init__).parameters
    accepted = {key: value for key, value in kwargs.items() if key in params}
    if "relative_step" in params:  # Adafactor: follow the Trainer's schedule instead of its own
        accepted.pop("eps", None)
        accepted.update(scale_parameter=False, relative_step=False)
    return accepted


def _wants_decay(name: str, param: Any) -> bool:
    """Weight decay for matrices only: biases and norm scales are left alone."""
    return param.ndim >= 2 and "bias" not in name and "norm" not in name.lower()


def _decay_groups(named: list[tuple[str, Any]], weight_decay: float) -> list[dict[str, Any]]:
    """[decayed, not decayed] parameter groups (BAdam reads the decay from the first group)."""
    decay = [param for name, param in named if _wants_decay(name, param)]
    no_decay = [param for name, param in named if not _wants_decay(name, param)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _require(package: str, key: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ModelError(key)


# ---------------------------------------------------------------- LoRA+


def _create_loraplus_optimizer(model: Any, lr: float, weight_decay: float, finetuning_args: FinetuningArguments,
                               kwargs: dict[str, Any], optim: str) -> Any:
    """LoRA+: the B matrices learn `loraplus_lr_ratio` times faster than A; embedding adapters at their own rate."""
    ratio = finetuning_args.loraplus_lr_ratio
    trainable = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    if not any("lora_B" in name or "lora_embedding_B" in name for name, _ in trainable):
        raise ModelError("loraplus_needs_lora", method=finetuning_args.finetuning_type)
    embedding = [p for n, p in trainable if "lora_embedding_" in n]
    lora_b = [(n, p) for n, p in trainable if "lora_B" in n]
    rest = [(n, p) for n, p in trainable if "lora_embedding_" not in n and "lora_B" not in n]
    groups = _decay_groups(rest, weight_decay)
    groups += [{**group, "lr": lr * ratio} for group in _decay_groups(lora_b, weight_decay)]
    groups.append({"params": embedding, "weight_decay": weight_decay, "lr": finetuning_args.loraplus_lr_embedding})
    groups = [group for group in groups if group["params"]]
    cls = _base_optimizer_class(optim, "LoRA+")
    logger.info("LoRA+: B matrices at lr %g (ratio %g).", lr * ratio, ratio)
    return cls(groups, lr=lr, **_accepted_kwargs(cls, kwargs))


# ---------------------------------------------------------------- GaLore


def _projected_weights(model: Any, target: str, missing_key: str = "galore_target_not_found") -> list[Any]:
    """The trainable weight matrices GaLore or APOLLO projects: the linear layers named by `target` (`all`)."""
    from engine.model.adapters import find_linear_modules

    linear = find_linear_modules(model)
    names = [name.strip() for name in target.split(",") if name.strip()]
    if not names or names == ["all"]:
        names = list(linear)
    for name in names:
        if name not in linear:
            raise ModelError(missing_key, name=name, available=", ".join(sorted(linear)))
    modules = dict(model.named_modules())
    weights = [modules[full].weight for name in names for full in linear[name]]
    return [weight for weight in weights if weight.requires_grad]


def _galore_class(optim: str) -> Any:
    import galore_torch

    if optim in ADAMW:
        return galore_torch.GaLoreAdamW
    if optim in ADAMW_8BIT:
        return galore_torch.GaLoreAdamW8bit
    if optim == "adafactor":
        return galore_torch.GaLoreAdafactor
    raise ModelError("optimizer_unsupported", optim=optim, method="GaLore",
                     supported=", ".join((*ADAMW, *ADAMW_8BIT, "adafactor")))


def _create_galore_optimizer(model: Any, lr: float, weight_decay: float, finetuning_args: FinetuningArguments,
                             kwargs: dict[str, Any], optim: str) -> Any:
    """GaLore: Adam states live in a low-rank projection of each targeted weight's gradient."""
    _require("galore_torch", "galore_missing")
    ft = finetuning_args
    cls = _galore_class(optim)
    kwargs = _accepted_kwargs(cls, {**kwargs, "no_deprecation_warning": True})
    projected = _projected_weights(model, ft.galore_target)
    projected_ids = {id(param) for param in projected}
    others = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in projected_ids]
    galore = {"rank": ft.galore_rank, "update_proj_gap": ft.galore_update_interval, "scale": ft.galore_scale,
              "proj_type": ft.galore_proj_type}
    if ft.galore_layerwise:
        return _layerwise(cls, projected, others, lr, weight_decay, galore, kwargs, "GaLore")
    groups = [g for g in _decay_groups(others, weight_decay) if g["params"]]
    groups.append({"params": projected, "weight_decay": weight_decay, **galore})
    logger.info("GaLore on %d weight matrices (rank %d).", len(projected), ft.galore_rank)
    return cls(groups, lr=lr, **kwargs)


def _layerwise(cls: Any, projected: list[Any], others: list[tuple[str, Any]], lr: float, weight_decay: float,
               projection: dict[str, Any], kwargs: dict[str, Any], method: str) -> Any:
    """One optimizer per weight (GaLore's or APOLLO's), stepped in a backward hook as soon as its gradient is ready.

    No gradient outlives its layer, which is the memory saving. The returned stand-in's `step` and `zero_grad`
    do nothing; it is a real `torch.optim.Optimizer` with one parameter group so the Trainer's LR schedule can
    drive it, and each hook copies that learning rate to its weight's optimizer. It has `layerwise = True`.
    """
    import torch

    class LayerwiseOptimizer(torch.optim.Optimizer):
        layerwise = True

        def __init__(self) -> None:
            super().__init__([torch.zeros(1)], {"lr": lr})

        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            return closure() if closure is not None else None

        def zero_grad(self, set_to_none: bool = True) -> None:
            return None

    per_param: dict[int, Any] = {}
    for index, param in enumerate(projected, start=1):
        per_param[id(param)] = optimizer = cls([{"params": [param], "weight_decay": weight_decay, **projection}],
                                               lr=lr, **kwargs)
        if "seed" in optimizer.state[param]:  # APOLLO seeds each random projection by position: keep them distinct
            optimizer.state[param]["seed"] = index
    for name, param in others:
        decay = weight_decay if _wants_decay(name, param) else 0.0
        per_param[id(param)] = cls([{"params": [param], "weight_decay": decay}], lr=lr, **kwargs)
    wrapper = LayerwiseOptimizer()

    def step_now(param: Any) -> None:
        optimizer = per_param[id(param)]
        for group in optimizer.param_groups:
            group["lr"] = wrapper.param_groups[0]["lr"]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for param in [*projected, *(p for _, p in others)]:
        param.register_post_accumulate_grad_hook(step_now)
    wrapper.per_param = per_param
    logger.info("Layer-wise %s on %d weight matrices: gradient accumulation must be 1.", method, len(projected))
    return wrapper


# ---------------------------------------------------------------- APOLLO


def _create_apollo_optimizer(model: Any, lr: float, weight_decay: float, finetuning_args: FinetuningArguments,
                             kwargs: dict[str, Any], optim: str) -> Any:
    """APOLLO: AdamW whose update for each targeted weight is scaled per channel (or per tensor) by Adam states
    kept only for a low-rank (random or SVD) projection of its gradient."""
    _require("apollo_torch", "apollo_missing")
    if optim not in ADAMW:
        raise ModelError("optimizer_unsupported", optim=optim, method="APOLLO", supported=", ".join(ADAMW))
    from apollo_torch import APOLLOAdamW

    ft = finetuning_args
    # scale_front is an argument of the optimizer, not of a parameter group.
    kwargs = {**_accepted_kwargs(APOLLOAdamW, kwargs), "scale_front": ft.apollo_scale_front}
    projected = _projected_weights(model, ft.apollo_target, "apollo_target_not_found")
    projected_ids = {id(param) for param in projected}
    others = [(n, p) for n, p in model.named_parameters() if p.requires_grad and id(p) not in projected_ids]
    apollo = {"rank": ft.apollo_rank, "proj": ft.apollo_proj, "proj_type": ft.apollo_proj_type,
              "update_proj_gap": ft.apollo_update_interval, "scale": ft.apollo_scale,
              "scale_type": ft.apollo_scale_type}
    if ft.apollo_layerwise:
        return _layerwise(APOLLOAdamW, projected, others, lr, weight_decay, apollo, kwargs, "APOLLO")
    groups = [g for g in _decay_groups(others, weight_decay) if g["params"]]
    groups.append({"params": projected, "weight_decay": weight_decay, **apollo})
    logger.info("APOLLO on %d weight matrices (rank %d, %s projection).", len(projected), ft.apollo_rank,
                ft.apollo_proj)
    return APOLLOAdamW(groups, lr=lr, **kwargs)


# ---------------------------------------------------------------- BAdam


def _create_badam_optimizer(model: Any, lr: float, weight_decay: float, finetuning_args: FinetuningArguments,
                            kwargs: dict[str, Any], optim: str) -> Any:
    """BAdam: full training one block of layers at a time (`layer` mode) or a sparse share of each (`ratio`)."""
    _require("badam", "badam_missing")
    ft = finetuning_args
    named = list(model.named_parameters())
    groups = _decay_groups(named, weight_decay)
    if ft.badam_mode == "layer":
        from badam import BlockOptimizer

        cls = _base_optimizer_class(optim, "BAdam")
        base = cls(groups, lr=lr, **_accepted_kwargs(cls, kwargs))
        return BlockOptimizer(base_optimizer=base, named_parameters_list=named, block_prefix_list=None,
                              switch_block_every=ft.badam_switch_interval, start_block=ft.badam_start_block,
                              switch_mode=ft.badam_switch_mode, verbose=ft.badam_verbose)
    from badam import BlockOptimizerRatio

    adam = {key: kwargs[key] for key in ("betas", "eps") if key in kwargs}
    # BAdam freezes the parameter named lm_head; a head tied to the embeddings has no such name (and is frozen
    # with the embeddings anyway), so it must not look for one.
    separate_head = any("lm_head" in name for name, _ in named)
    return BlockOptimizerRatio(param_groups=groups, named_parameters_list=named, update_ratio=ft.badam_update_ratio,
                               mask_mode=ft.badam_mask_mode, verbose=ft.badam_verbose, include_embedding=False,
                               include_lm_head=not separate_head, lr=lr, **adam)


# ---------------------------------------------------------------- Adam-mini


def _create_adam_mini_optimizer(model: Any, lr: float, weight_decay: float, kwargs: dict[str, Any]) -> Any:
    """Adam-mini: one second-moment value per block (attention head, neuron, embedding row) instead of per weight."""
    _require("adam_mini", "adam_mini_missing")
    from adam_mini import Adam_mini

    config = model.config.get_text_config()
    shape = {"dim": getattr(config, "hidden_size", None), "n_heads": getattr(config, "num_attention_heads", None),
             "n_kv_heads": getattr(config, "num_key_value_heads", None)}  # the head blocks of q, k and v
    return Adam_mini(named_parameters=[(n, p) for n, p in model.named_parameters() if p.requires_grad], lr=lr,
                     betas=kwargs.get("betas", (0.9, 0.999)), eps=kwargs.get("eps", 1e-8), weight_decay=weight_decay,
                     verbose=False, **{key: value for key, value in shape.items() if value is not None})


# ---------------------------------------------------------------- Muon


def _create_muon_optimizer(model: Any, lr: float, weight_decay: float, kwargs: dict[str, Any]) -> Any:
    """Muon (torch.optim.Muon) for the hidden weight matrices, AdamW for embeddings, the head, norms and biases.

    Muon's step is scaled to match AdamW's update size (`match_rms_adamw`), so the AdamW learning rate and weight
    decay carry over, as in LLaMA-Factory.
    """
    import torch

    embeddings = {id(module.weight) for module in (model.get_input_embeddings(), model.get_output_embeddings())
                  if module is not None}
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def is_hidden_matrix(name: str, param: Any) -> bool:
        return param.ndim == 2 and id(param) not in embeddings and "embed" not in name and "lm_head" not in name

    matrices = [p for n, p in trainable if is_hidden_matrix(n, p)]
    rest = [(n, p) for n, p in trainable if not is_hidden_matrix(n, p)]
    parts = []
    if matrices:
        parts.append(torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"))
    groups = [g for g in _decay_groups(rest, weight_decay) if g["params"]]
    if groups:
        parts.append(torch.optim.AdamW(groups, lr=lr, **_accepted_kwargs(torch.optim.AdamW, kwargs)))
    logger.info("Muon on %d weight matrices, AdamW on %d other tensors.", len(matrices), len(rest))
    return _combine(parts)


def _combine(parts: list[Any]) -> Any:
    """One optimizer stepping several that own disjoint parameters (Muon and AdamW).

    Its `param_groups` are the parts' own group dicts, so the Trainer's LR schedule and gradient scaling reach
    every part; `optimizers` lists the parts; the state dict holds each part's.
    """
    import torch

    if len(parts) == 1:
        return parts[0]

    class CombinedOptimizer(torch.optim.Optimizer):
        def __init__(self) -> None:
            super().__init__([p for part in parts for group in part.param_groups for p in group["params"]], {})
            self.optimizers = parts
            self.param_groups = [group for part in parts for group in part.param_groups]

        @torch.no_grad()
        def step(self, closure: Any = None) -> Any:
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for part in self.optimizers:
                part.step()
            return loss

        def zero_grad(self, set_to_none: bool = True) -> None:
            for part in self.optimizers:
                part.zero_grad(set_to_none=set_to_none)

        def state_dict(self) -> dict[str, Any]:
            return {"parts": [part.state_dict() for part in self.optimizers]}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            for part, state in zip(self.optimizers, state_dict["parts"], strict=True):
                part.load_state_dict(state)
            # Loading gives each part new group dicts (accelerate reloads every optimizer it prepares).
            self.param_groups = [group for part in self.optimizers for group in part.param_groups]

    return CombinedOptimizer()


def create_optimizer(model: Any, learning_rate: float, weight_decay: float, finetuning_args: FinetuningArguments,
                     adam_kwargs: dict[str, Any], *, optim: str = "adamw_torch") -> Any | None:
    """The optimizer for GaLore, APOLLO, BAdam, LoRA+, Adam-mini or Muon (validation lets one at most be on), or
    None for the Trainer's own.

    `adam_kwargs` are passed to the optimizer class (e.g. {"betas": (0.9, 0.999), "eps": 1e-8}); `optim` is the
    Trainer's optimizer name, which picks the base class (AdamW, 8-bit AdamW, SGD, Adagrad, Adafactor).
    """
    ft = finetuning_args
    if ft.use_galore:
        return _create_galore_optimizer(model, learning_rate, weight_decay, ft, adam_kwargs, optim)
    if ft.use_apollo:
        return _create_apollo_optimizer(model, learning_rate, weight_decay, ft, adam_kwargs, optim)
    if ft.use_badam:
        return _create_badam_optimizer(model, learning_rate, weight_decay, ft, adam_kwargs, optim)
    if ft.loraplus_lr_ratio is not None:
        return _create_loraplus_optimizer(model, learning_rate, weight_decay, ft, adam_kwargs, optim)
    if ft.use_adam_mini:
        return _create_adam_mini_optimizer(model, learning_rate, weight_decay, adam_kwargs)
    if ft.use_muon:
        return _create_muon_optimizer(model, learning_rate, weight_decay, adam_kwargs)
    return None


def updates_in_backward(finetuning_args: FinetuningArguments) -> bool:
    """Whether the optimizer steps each weight inside the backward pass (layer-wise GaLore or APOLLO): no global
    gradient clipping and no accumulation then."""
    ft = finetuning_args
    return (ft.use_galore and ft.galore_layerwise) or (ft.use_apollo and ft.apollo_layerwise)
