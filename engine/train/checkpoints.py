"""Checkpoints handed back to a trainer on resume: nothing in them may run code when it is loaded.

A checkpoint folder is something a user can copy in. transformers 5.25's Trainer loads its optimizer, scheduler,
scaler and RNG files with `torch.load(weights_only=True)`, but DeepSpeed's and older loaders unpickle freely, and
PPO's own loader is ours. So before any of them sees a checkpoint, every torch file in it is read statically (its
pickle disassembled, never run) and refused when it names anything beyond tensors and plain values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from engine.errors import ConfigError

TORCH_SUFFIXES = (".pt", ".pth", ".bin")
# The Trainer writes training_args.bin (a pickled TrainingArguments) but never loads it when resuming.
NOT_LOADED = frozenset({"training_args.bin"})


def unsafe_content(path: Path) -> str | None:
    """Why loading `path` could run code (a plain pickle, or globals torch's safe loader refuses), or None."""
    import torch
    from transformers.trainer_pt_utils import safe_globals  # the numpy RNG state the Trainer saves is fine

    if not zipfile.is_zipfile(path):
        return "it is a plain pickle, not a torch.save archive"
    try:
        with safe_globals():
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as err:  # noqa: BLE001 - any archive that cannot be read is refused, not loaded
        return f"it cannot be inspected ({type(err).__name__}: {err})"
    if names:
        return "it would import " + ", ".join(sorted(names)[:5])
    return None


def check_checkpoint_files(folder: Path) -> None:
    """Raise a ConfigError naming the first torch file in `folder` that is unsafe to load."""
    for path in sorted(Path(folder).rglob("*")):
        if path.suffix not in TORCH_SUFFIXES or path.name in NOT_LOADED or not path.is_file():
            continue
        problem = unsafe_content(path)
        if problem:
            raise ConfigError("checkpoint_unsafe", path=str(folder), file=str(path.relative_to(folder)),
                              problem=problem)
