"""Generate `engine/config/trainer_fields.py`: transformers' training-argument fields as a torch-free table.

Run `python scripts/trainer_fields.py` after upgrading transformers; a test fails while the table is stale.
Importing transformers' TrainingArguments pulls torch, which the config layer must not do, hence the table.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any

HEADER = '''"""transformers' training-argument fields: name → (kind, default). Generated; do not edit.

Regenerate with `python scripts/trainer_fields.py` (a test compares this file with the installed transformers).
A config key found here and not among our own fields is passed to the Trainer (or TRL config) unchanged.
Kinds: bool, int, float, str, dict, list or any; a trailing `?` means the value may also be null.
"""

'''
_PLAIN = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict", list: "list"}


def field_kind(tp: Any) -> str:
    """A field's annotation reduced to one of the kinds the config coerces to (`int?`, `dict`, `any`, …)."""
    args = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    nullable = type(None) in args
    kinds = set()
    for arg in args:
        if arg is type(None):
            continue
        origin = typing.get_origin(arg) or arg
        if isinstance(origin, type) and issubclass(origin, enum.Enum):
            kinds.add("str")  # transformers' strategy enums are written as their string values
        else:
            kinds.add(_PLAIN.get(origin, "any"))
    kind = kinds.pop() if len(kinds) == 1 else "any"
    return kind + ("?" if nullable and kind != "any" else "")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    return value if isinstance(value, (type(None), bool, int, float, str, list, dict)) else None


def render_trainer_fields() -> str:
    """The Python source of `engine/config/trainer_fields.py` for the installed transformers."""
    import transformers
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    lines = [HEADER, f'TRANSFORMERS_VERSION = "{transformers.__version__}"', "",
             "TRAINER_FIELDS: dict[str, tuple[str, object]] = {"]
    seq2seq = []
    for f in dataclasses.fields(Seq2SeqTrainingArguments):
        if not f.init:
            continue
        lines.append(f"    {f.name!r}: ({field_kind(hints[f.name])!r}, {_default(f)!r}),")
        if f.name not in base:
            seq2seq.append(f.name)
    lines += ["}", "", "# Fields only transformers' Seq2SeqTrainingArguments has (plain Trainer and TRL configs lack them).",
              f"SEQ2SEQ_ONLY = {tuple(seq2seq)!r}", ""]
    return "\n".join(lines)
