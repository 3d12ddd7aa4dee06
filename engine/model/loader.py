"""Load the tokenizer and the model a run asks for, with errors that say what is wrong and how to fix it.

`load_tokenizer(model_args)` and `load_model(tokenizer, model_args, finetuning_args, is_trainable=...)` are the
entry points of every stage, chat and export. `load_model` reads the config, applies RoPE scaling, picks the
attention implementation and dtype, sets the mixture-of-experts router loss, quantizes with bitsandbytes when
asked, resizes the embeddings to the tokenizer (initialising the rows of new special tokens), and hands the model
to `adapters.setup_finetuning` (full / freeze / LoRA / OFT, see `engine.model.methods`).

Loading failures from transformers and huggingface_hub (a missing folder, no network, a gated or unknown repo,
a truncated weight file, remote code not trusted) become `ModelError`s with a message key under `error.`.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.adapters import check_method_options, count_parameters, setup_finetuning
from engine.model.load_errors import translated_errors
from engine.model.special_tokens import add_described_tokens, init_new_token_rows
from engine.paths import looks_like_local_path

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt",
                   "spiece.model", "sentencepiece.bpe.model", "tiktoken.model", "tekken.json")
ROPE_SCALING_FACTOR = 2.0
"""Context extension used when `rope_scaling` is set and the model's config carries no factor of its own."""


# ---------------------------------------------------------------- tokenizer


def resolve_model_folder(model_args: ModelArguments) -> str:
    """The local folder (the built demo, or a user folder) or the Hub id to load from."""
    from engine.model.demo import resolve_model_path

    name = (model_args.model_name_or_path or "").strip()
    if not name:
        raise ModelError("no_model", setting=Setting("model_name_or_path"))
    resolved = resolve_model_path(name)
    if resolved != name:
        return resolved
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        return expanded
    if os.path.exists(expanded):
        raise ModelError("model_path_not_folder", path=name)
    if looks_like_local_path(name):
        raise ModelError("model_path_missing", path=name)
    return name


def _hub_kwargs(model_args: ModelArguments) -> dict[str, Any]:
    return {
        "revision": model_args.model_revision,
        "cache_dir": model_args.cache_dir,
        "token": model_args.hf_hub_token,
        "trust_remote_code": model_args.trust_remote_code,
    }


def _split(names: str | None) -> list[str]:
    return [name.strip() for name in (names or "").split(",") if name.strip()]


def load_tokenizer(model_args: ModelArguments) -> Any:
    """The tokenizer of `model_name_or_path`, with the configured extra tokens, a pad token and right padding."""
    from transformers import AutoTokenizer

    path = resolve_model_folder(model_args)
    local = os.path.isdir(path)
    if local and not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        raise ModelError("tokenizer_files_missing", path=path, expected=", ".join(TOKENIZER_FILES[:4]))
    with translated_errors(model_args.model_name_or_path, model_args, path if local else None):
        tokenizer = AutoTokenizer.from_pretrained(
            path,
            use_fast=model_args.use_fast_tokenizer,
            split_special_tokens=model_args.split_special_tokens,
            padding_side="right",
            **_hub_kwargs(model_args),
        )
    added = tokenizer.add_tokens(_split(model_args.add_tokens))
    added += add_described_tokens(tokenizer, model_args)  # new_special_tokens_config, else add_special_tokens
    if added:
        logger.info("Added %d tokens to the tokenizer (now %d).", added, len(tokenizer))
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError("tokenizer_no_pad", name=model_args.model_name_or_path)
        tokenizer.pad_token = tokenizer.eos_token  # collators mask padded labels by position, so eos is still learnt
    tokenizer.padding_side = "right"  # training pads on the right; generation code switches to left itself
    return tokenizer


# ---------------------------------------------------------------- config


def load_config(model_args: ModelArguments, path: str | None = None) -> Any:
    """The transformers config of the model (no weights are read)."""
    from transformers import AutoConfig

    path = path or resolve_model_folder(model_args)
    folder = path if os.path.isdir(path) else None
    if folder and not os.path.isfile(os.path.join(folder, "config.json")):
        adapter_config = os.path.join(folder, "adapter_config.json")
        if os.path.isfile(adapter_config):  # a LoRA run's output given as the model: say how to load it
            try:
                with open(adapter_config, encoding="utf-8") as f:
                    base = json.load(f).get("base_model_name_or_path") or "?"
            except (OSError, ValueError, AttributeError):
                base = "?"
            raise ModelError("model_path_is_adapter", path=folder, base=base)
        raise ModelError("model_config_missing", path=folder)
    with translated_errors(model_args.model_name_or_path, model_args, folder):
        return AutoConfig.from_pretrained(path, **_hub_kwargs(model_args))


def apply_rope_scaling(config: Any, model_args: ModelArguments) -> None:
    """Switch the config to `rope_scaling` (linear, dynamic, yarn, llama3) to extend the context.

    The factor is the config's own when it already has one, else `ROPE_SCALING_FACTOR` (2.0). linear, yarn and
    llama3 raise `max_position_embeddings` by the factor (yarn and llama3 remember the original length);
    dynamic NTK keeps it, because it scales only past that length.
    """
    kind = model_args.rope_scaling
    if not kind:
        return
    params = getattr(config, "rope_parameters", None)
    nested = bool(params) and hasattr(config, "nested_rope_parameter_keys") and config.nested_rope_parameter_keys(
        params)
    if not isinstance(params, dict) or not params or nested or not hasattr(config, "max_position_embeddings"):
        raise ModelError("rope_scaling_unsupported", name=model_args.model_name_or_path, kind=kind)
    factor = float(params.get("factor") or ROPE_SCALING_FACTOR)
    original = int(params.get("original_max_position_embeddings") or config.max_position_embeddings)
    scaled: dict[str, Any] = {"rope_type": kind, "factor": factor, "rope_theta": params.get("rope_theta", 10000.0)}
    if "partial_rotary_factor" in params:
        scaled["partial_rotary_factor"] = params["partial_rotary_factor"]
    if kind in ("yarn", "llama3"):
        scaled["original_max_position_embeddings"] = original
    if kind == "llama3":
        scaled["low_freq_factor"] = params.get("low_freq_factor", 1.0)
        scaled["high_freq_factor"] = params.get("high_freq_factor", 4.0)
    config.rope_parameters = scaled
    if kind != "dynamic":
        config.max_position_embeddings = int(original * factor)
    logger.info("RoPE scaling %s with factor %s: context %d tokens.", kind, factor, config.max_position_embeddings)


def apply_moe_aux_loss(config: Any, model_args: ModelArguments, is_trainable: bool) -> None:
    """Weight the mixture-of-experts router's load-balancing loss by `moe_aux_loss_coef` while training.

    Models with a router carry `router_aux_loss_coef` in their (text) config; the loss is only added when the
    model outputs its router logits, so that is switched on too (off for a coefficient of 0).
    """
    coef = model_args.moe_aux_loss_coef
    if coef is None or not is_trainable:
        return
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    routed = [c for c in ([config] if text is config else [config, text]) if hasattr(c, "router_aux_loss_coef")]
    if not routed:
        logger.warning("moe_aux_loss_coef is set, but this model (type %s) has no mixture-of-experts router "
                       "(no router_aux_loss_coef in its config): the setting has no effect.",
                       getattr(config, "model_type", "?"))
        return
    for routed_config in routed:
        routed_config.router_aux_loss_coef = coef
        routed_config.output_router_logits = coef > 0
    logger.info("Router load-balancing loss weighted %s.", coef)


def infer_model_dtype(model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool,
                      compute_dtype: Any = None) -> Any:
    """The dtype the weights are loaded in.

    Training keeps float32 master weights (the Trainer autocasts to bf16/fp16) unless the caller passes a
    `compute_dtype` or `pure_bf16` is set; inference uses `infer_dtype`, and on `auto` bf16 (or fp16) on a GPU
    and float32 on the CPU.
    """
    import torch

    if compute_dtype is not None:
        return compute_dtype
    if finetuning_args.pure_bf16:
        return torch.bfloat16
    if is_trainable:
        return torch.float32
    if model_args.infer_dtype != "auto":
        return getattr(torch, model_args.infer_dtype)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


# ---------------------------------------------------------------- model


def _model_class(finetuning_args: FinetuningArguments, config: Any) -> Any:
    """A reward model scores a sequence (one value); a media model loads with its encoders; every other stage
    trains a causal LM."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from engine.multimodal.parts import is_media_config, media_model_class

    if finetuning_args.stage == "rm":
        return AutoModelForSequenceClassification
    return media_model_class(config) if is_media_config(config) else AutoModelForCausalLM


def _load_weights(path: str, config: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                  dtype: Any, attn: str | None) -> Any:
    """The transformers model: from the weights, or randomly initialised with `train_from_scratch`."""
    from engine.model.quantization import build_quantization_config, quantization_device_map

    model_class = _model_class(finetuning_args, config)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": model_args.trust_remote_code}
    if attn is not None:
        kwargs["attn_implementation"] = attn
    quantization = build_quantization_config(model_args, config, dtype)
    if model_args.train_from_scratch:
        if quantization is not None:
            raise ModelError("scratch_quantized")
        return model_class.from_config(config, **kwargs)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = quantization_device_map(model_args)
        if kwargs["device_map"] == "auto":
            kwargs["offload_folder"] = model_args.offload_folder
    kwargs.update(_hub_kwargs(model_args))
    return model_class.from_pretrained(path, config=config, **kwargs)


def _resize_embeddings(model: Any, tokenizer: Any, model_args: ModelArguments) -> None:
    """Grow the embeddings when the tokenizer has more tokens than the model has rows (new rows: the mean), and
    initialise the rows of new special tokens from `new_special_tokens_config` as `init_special_tokens` says."""
    embeddings = model.get_input_embeddings()
    if embeddings is None or tokenizer is None:
        return
    rows, needed = embeddings.weight.shape[0], len(tokenizer)
    if needed <= rows:
        init_new_token_rows(model, tokenizer, model_args, rows)  # a token may take a spare row of a padded vocab
        return
    model.resize_token_embeddings(needed, pad_to_multiple_of=64)  # multiples of 64 keep the matmuls fast
    if not model_args.resize_vocab:
        logger.warning("The tokenizer has %d tokens but the model only %d rows: the embeddings were resized. Set "
                       "resize_vocab: true to also train the new rows.", needed, rows)
    else:
        logger.info("Resized the embeddings from %d to %d rows.", rows, model.get_input_embeddings().weight.shape[0])
    init_new_token_rows(model, tokenizer, model_args, rows)


def _prepare_model(model: Any, model_args: ModelArguments, is_trainable: bool) -> Any:
    """Cache, k-bit preparation and upcasts that must happen before the adapters are added."""
    import torch

    from engine.model.quantization import is_quantized

    model.config.use_cache = model_args.use_cache and not is_trainable  # training never reuses the cache
    if is_trainable and is_quantized(model) and not model_args.use_unsloth:
        from peft import prepare_model_for_kbit_training

        # The Trainer turns gradient checkpointing on itself (`gradient_checkpointing` / `activation_checkpointing`).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if model_args.upcast_layernorm:
        for name, param in model.named_parameters():
            if param.ndim == 1 and "norm" in name:
                param.data = param.data.to(torch.float32)
    if model_args.upcast_lmhead_output and model.get_output_embeddings() is not None:
        def to_float32(module: Any, args: Any, output: Any) -> Any:
            return output.to(torch.float32)

        model.get_output_embeddings().register_forward_hook(to_float32)
    return model


def load_model(tokenizer: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, *,
               is_trainable: bool, compute_dtype: Any = None, max_seq_length: int | None = None) -> Any:
    """The model, ready to train (`is_trainable`) or to generate, with its finetuning method set up.

    `compute_dtype` (e.g. torch.bfloat16 with `bf16: true`) loads the frozen weights in that dtype to save
    memory; trainable weights stay float32 unless `pure_bf16`. `max_seq_length` is used by Unsloth only.
    Not trainable: eval mode, no parameter requires grad, adapters from `adapter_name_or_path` loaded.
    """
    from engine.model.boosters import apply_liger_kernel, load_unsloth_model, resolve_attn_implementation

    check_method_options(model_args, finetuning_args, is_trainable)
    path = resolve_model_folder(model_args)
    folder = path if os.path.isdir(path) else None
    config = load_config(model_args, path)
    apply_rope_scaling(config, model_args)
    apply_moe_aux_loss(config, model_args, is_trainable)
    attn = resolve_attn_implementation(model_args.flash_attn)
    dtype = infer_model_dtype(model_args, finetuning_args, is_trainable, compute_dtype)
    if finetuning_args.stage == "rm":
        config.num_labels = 1
        config.pad_token_id = getattr(tokenizer, "pad_token_id", None)  # the score is read at the last non-pad token
    apply_liger_kernel(config, model_args, finetuning_args, is_trainable)
    with translated_errors(model_args.model_name_or_path, model_args, folder):
        if model_args.use_unsloth:
            model = load_unsloth_model(path, config, model_args, finetuning_args, dtype, max_seq_length)
        else:
            model = _load_weights(path, config, model_args, finetuning_args, dtype, attn)
    _resize_embeddings(model, tokenizer, model_args)
    model = _prepare_model(model, model_args, is_trainable)
    model = setup_finetuning(model, model_args, finetuning_args, is_trainable)
    if is_trainable:
        model.train()
    else:
        model.requires_grad_(False)
        model.eval()
    trainable, total = count_parameters(model)
    logger.info("Parameters: %s trainable of %s (%.4f%%).", f"{trainable:,}", f"{total:,}",
                100 * trainable / max(total, 1))
    if model_args.print_param_status:
        for name, param in model.named_parameters():
            logger.info("%s: %s %s trainable=%s", name, param.dtype, param.device, param.requires_grad)
    return model
