"""The frozen reference model of DPO, KTO and the ASFT loss: one loader for all three."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from engine.config import RunConfig
from engine.model.methods import METHODS

logger = logging.getLogger(__name__)


def load_reference_model(config: RunConfig, tokenizer: Any, compute_dtype: Any = None) -> Any | None:
    """The frozen reference policy, or None when the trained adapter's base serves as the reference.

    `ref_model` (with `ref_model_adapters`, `ref_model_quantization_bit`) when set; otherwise, for full and freeze
    training, the base model loaded again; with an adapter method (LoRA, OFT) nothing: the trained model with its
    adapters switched off (TRL: a frozen copy of the starting adapter) is the reference, so no second model is held
    in memory.
    """
    from engine.model.loader import load_model

    ft = config.finetuning
    if not ft.ref_model and METHODS[ft.finetuning_type].peft_type:
        return None
    model_args = config.model
    if ft.ref_model:
        model_args = dataclasses.replace(model_args, model_name_or_path=ft.ref_model,
                                         adapter_name_or_path=ft.ref_model_adapters,
                                         quantization_bit=ft.ref_model_quantization_bit)
    # Adapters of a reference model are merged or applied as LoRA, whatever the policy trains.
    ref_args = dataclasses.replace(ft, finetuning_type="lora" if model_args.adapter_name_or_path else "full")
    logger.info("Reference model: %s%s.", model_args.model_name_or_path,
                f" + {model_args.adapter_name_or_path}" if model_args.adapter_name_or_path else "")
    return load_model(tokenizer, model_args, ref_args, is_trainable=False, compute_dtype=compute_dtype)
