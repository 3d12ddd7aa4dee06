"""Finding the weights a method trains: decoder layers, linear layers, embeddings, and LLaMA Pro's added blocks.

Names from the config are checked against the model; a name that matches nothing is a `ModelError` that lists
the names that exist. Shared by every method module (full, freeze, LoRA, OFT).
"""

from __future__ import annotations

from typing import Any

from engine.errors import ModelError, Setting

# Output heads are never adapter targets under `all`: adapting them rarely helps and they are large.
HEAD_NAMES = frozenset({"lm_head", "score", "classifier", "v_head", "embed_out", "output"})
# Name parts of the modules an adapter adds inside a wrapped layer: never targets themselves.
ADAPTER_MARKS = ("lora_", "oft_")


def split_names(names: str | None) -> list[str]:
    """The comma-separated names of a config value, stripped, empty ones dropped."""
    return [name.strip() for name in (names or "").split(",") if name.strip()]


def cast_trainable(model: Any, pure_bf16: bool) -> None:
    """Trainable weights in float32 (the optimizer's master copy), or bfloat16 with `pure_bf16`."""
    import torch

    dtype = torch.bfloat16 if pure_bf16 else torch.float32
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def module_name_parts(model: Any, prefix: str = "") -> set[str]:
    """Every dotted component of the module names under `prefix` (e.g. self_attn, q_proj, mlp, norm)."""
    parts: set[str] = set()
    for name, _ in model.named_modules():
        if not name or (prefix and not name.startswith(prefix)):
            continue
        parts.update(part for part in name[len(prefix):].split(".") if part and not part.isdigit())
    return parts


def check_names(names: list[str], available: set[str], key: str) -> None:
    """Raise `key` for the first of `names` that is not in `available`, listing what is."""
    for name in names:
        if name not in available:
            raise ModelError(key, name=name, available=", ".join(sorted(available)))


def embedding_module_names(model: Any) -> list[str]:
    """The last name component of the input embeddings and the output head (trained when the vocab grows)."""
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    return sorted({name.split(".")[-1] for name, module in model.named_modules()
                   if name and any(module is w for w in wanted if w is not None)})


def find_decoder_layers(model: Any) -> tuple[str, int]:
    """(module path, count) of the decoder layer list, e.g. ("model.layers", 32)."""
    import torch

    config = getattr(model.config, "text_config", None) or model.config
    count = getattr(config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return name, count
    raise ModelError("freeze_no_layers", model_type=str(getattr(model.config, "model_type", type(model).__name__)))


def llama_pro_layer_ids(count: int, expanded: int) -> list[int]:
    """The indices of the `expanded` blocks `studio expand-model` added to a model that now has `count` layers.

    The expansion inserts one block after every `count // expanded - 1` original ones, so the added blocks are
    the last of each group of `count // expanded` (e.g. 6 layers, 2 added: 2 and 5).
    """
    if expanded <= 0:
        raise ModelError("llama_pro_trainable_layers", value=expanded, key=Setting("freeze_trainable_layers"))
    if count % expanded:
        raise ModelError("llama_pro_not_divisible", layers=count, expanded=expanded,
                         key=Setting("freeze_trainable_layers"))
    stride = count // expanded
    return list(range(stride - 1, count, stride))


def find_linear_modules(model: Any) -> dict[str, list[str]]:
    """Short name → full names of the linear layers an adapter can wrap (output heads and adapters' own excluded)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        short = name.split(".")[-1]
        if not isinstance(module, torch.nn.Linear) or module is head or short in HEAD_NAMES:
            continue
        if any(mark in name for mark in ADAPTER_MARKS):
            continue
        found.setdefault(short, []).append(name)
    return found


def linear_targets(model: Any, target: str, error_key: str, llama_pro: int | None = None,
                   frozen: tuple[str, ...] = ()) -> list[str]:
    """The `target_modules` for PEFT: every linear layer for `all`, else the checked comma-separated names.

    With `llama_pro` (the number of blocks `expand-model` added), only the layers inside those blocks, by full name.
    A media model's targets are full names (its encoder's short names, e.g. `0`, would also match whole blocks),
    only those outside the `frozen` parts.
    """
    from engine.multimodal.parts import is_frozen, is_media_config

    linear = find_linear_modules(model)
    names = split_names(target)
    everything = not names or names == ["all"]
    if not everything:
        full_names = [full for fulls in linear.values() for full in fulls]
        for name in names:
            if not any(full == name or full.endswith("." + name) for full in full_names):
                raise ModelError(error_key, name=name, available=", ".join(sorted(linear)))
    if is_media_config(getattr(model, "config", None)):
        return sorted(full for fulls in linear.values() for full in fulls
                      if (everything or any(full == n or full.endswith("." + n) for n in names))
                      and not is_frozen(full, frozen))
    if everything:
        names = sorted(linear)
    if llama_pro is None:
        return names
    prefix, count = find_decoder_layers(model)
    blocks = tuple(f"{prefix}.{i}." for i in llama_pro_layer_ids(count, llama_pro))
    return sorted(full for fulls in linear.values() for full in fulls
                  if full.startswith(blocks) and any(full == n or full.endswith("." + n) for n in names))
