"""What every PEFT method (LoRA, OFT) shares: loading saved adapters, continuing one, or adding a new one.

Saved adapters are loaded by `PeftModel.from_pretrained`, which reads the adapter's own type from its
adapter_config.json: an inference or export job loads a LoRA or an OFT run folder the same way, whatever
`finetuning_type` says. Training continues the last adapter of `adapter_name_or_path` only when it is of the
method's own type.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from engine.config.finetuning import FinetuningArguments
from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting
from engine.model.load_errors import translated_errors
from engine.model.methods.weights import (
    cast_trainable,
    check_names,
    embedding_module_names,
    module_name_parts,
    split_names,
)
from engine.model.quantization import is_quantized
from engine.paths import looks_like_local_path

logger = logging.getLogger(__name__)


def adapter_location(name: str) -> str:
    """A local adapter folder (checked) or a Hub id."""
    expanded = os.path.expanduser(name)
    if os.path.isdir(expanded):
        if not os.path.isfile(os.path.join(expanded, "adapter_config.json")):
            raise ModelError("adapter_config_missing", path=name)
        return expanded
    if os.path.exists(expanded) or looks_like_local_path(name):
        raise ModelError("adapter_not_found", path=name)
    return name


def _load_adapter(model: Any, location: str, model_args: ModelArguments, is_trainable: bool) -> Any:
    """`PeftModel.from_pretrained` with errors that name the adapter and the base model."""
    from peft import PeftModel

    folder = location if os.path.isdir(location) else None
    try:
        with translated_errors(location, model_args, folder):
            return PeftModel.from_pretrained(model, location, is_trainable=is_trainable)
    except ModelError as exc:
        cause = str(exc.__cause__ or "")
        if "size mismatch" in cause or "not found in the base model" in cause:
            lines = [line.strip() for line in cause.splitlines() if line.strip()]
            detail = next((line for line in lines if "size mismatch" in line or "not found" in line), lines[0])
            raise ModelError("adapter_mismatch", path=location, name=model_args.model_name_or_path,
                             error=detail.rstrip(".")) from exc.__cause__
        raise


def load_adapters(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments,
                  is_trainable: bool) -> tuple[Any, bool]:
    """Load `adapter_name_or_path` (comma-separated, applied in order); returns (model, last adapter kept).

    All but the last are merged into the weights. The last one stays an adapter (trained further when
    `is_trainable`) unless `create_new_adapter`, which merges it too so a fresh adapter can be added. A
    quantized base cannot take merged weights, so it accepts exactly one adapter.
    """
    locations = [adapter_location(name) for name in split_names(model_args.adapter_name_or_path)]
    if not locations:
        return model, False
    quantized = is_quantized(model)
    if quantized and len(locations) > 1:
        raise ModelError("quantized_multiple_adapters", count=len(locations))
    new_adapter = is_trainable and finetuning_args.create_new_adapter
    if quantized and new_adapter:
        raise ModelError("quantized_new_adapter")
    to_merge, last = (locations, None) if new_adapter else (locations[:-1], locations[-1])
    for location in to_merge:
        model = _load_adapter(model, location, model_args, is_trainable=False).merge_and_unload()
    if last is not None:
        model = _load_adapter(model, last, model_args, is_trainable=is_trainable)
    logger.info("Loaded adapters: %s%s.", ", ".join(locations), " (merged)" if last is None else "")
    return model, last is not None


def modules_to_save(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments) -> list[str]:
    """Modules trained fully beside the adapter: `additional_target`, plus the embeddings when the vocab grew."""
    names = split_names(finetuning_args.additional_target)
    check_names(names, module_name_parts(model), "additional_target_not_found")
    if model_args.resize_vocab:  # the new token rows start near the mean: train them fully
        names += [name for name in embedding_module_names(model) if name not in names]
    return names


def task_type(finetuning_args: FinetuningArguments) -> Any:
    """PEFT's task type: a reward model scores sequences, every other stage is a causal LM."""
    from peft import TaskType

    return TaskType.SEQ_CLS if finetuning_args.stage == "rm" else TaskType.CAUSAL_LM


def setup_adapter(model: Any, model_args: ModelArguments, finetuning_args: FinetuningArguments, is_trainable: bool,
                  peft_type: str, add_new: Callable[[Any], Any]) -> Any:
    """Load the saved adapters; for training, continue the last one or call `add_new(model)` to add a fresh one.

    `peft_type` is the method's adapter type ("LORA", "OFT"): a continued adapter of another type is refused,
    because training it would not be what `finetuning_type` says.
    """
    if not is_trainable:
        return load_adapters(model, model_args, finetuning_args, is_trainable=False)[0]
    model, resumed = load_adapters(model, model_args, finetuning_args, is_trainable=True)
    if resumed:
        saved = str(getattr(model.peft_config["default"].peft_type, "value", model.peft_config["default"].peft_type))
        if saved != peft_type:
            raise ModelError("adapter_type_mismatch", path=split_names(model_args.adapter_name_or_path)[-1],
                             saved=saved.lower(), method=finetuning_args.finetuning_type,
                             key=Setting("create_new_adapter"))
    else:
        model = add_new(model)
    cast_trainable(model, finetuning_args.pure_bf16)
    return model
