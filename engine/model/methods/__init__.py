"""Finetuning methods: one module per method, each with `check(...)` and `setup(...)`.

`METHODS` maps the `finetuning_type` value to its record. The module a record names is imported only when the
method is used, so this package stays torch-free, like the training stages' `STAGES`. Adding a method is one
module here plus one entry below (and its locale strings).

A method module provides:

- `check(model_args, finetuning_args, is_trainable) -> None`: option checks that need no weights, run before
  the model loads (a mistake costs a second, not a model load).
- `setup(model, model_args, finetuning_args, is_trainable) -> model`: make the method's weights trainable, or,
  for inference (`is_trainable=False`), load what a run of this method saved on top of the base.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from engine.errors import ModelError, Setting


@dataclass(frozen=True)
class Method:
    """What the rest of the engine needs to know about one finetuning method."""

    module: str
    """The module with the method's `check` and `setup`."""
    peft_type: str | None = None
    """The PEFT adapter type a run saves (adapter_config.json + adapter weights); None: it saves a whole model."""
    quantized_base: bool = False
    """Whether it can train on a 4/8-bit quantized base (only adapters can: packed weights take no gradient)."""


METHODS: dict[str, Method] = {
    "full": Method("engine.model.methods.full"),
    "freeze": Method("engine.model.methods.freeze"),
    "lora": Method("engine.model.methods.lora", peft_type="LORA", quantized_base=True),
    "oft": Method("engine.model.methods.oft", peft_type="OFT", quantized_base=True),
}


def get_method(name: str) -> Method:
    """The record of `finetuning_type` `name`; a `bad_choice` error naming the known ones otherwise."""
    if name not in METHODS:
        raise ModelError("bad_choice", key=Setting("finetuning_type"), value=name, choices=", ".join(METHODS))
    return METHODS[name]


def method_module(name: str) -> ModuleType:
    """The imported module of method `name` (its `check` and `setup`)."""
    return importlib.import_module(get_method(name).module)


def adapter_methods() -> list[str]:
    """The methods that train (and load) PEFT adapters."""
    return [name for name, method in METHODS.items() if method.peft_type]


def quantizable_methods() -> list[str]:
    """The methods that can train on a quantized base."""
    return [name for name, method in METHODS.items() if method.quantized_base]
