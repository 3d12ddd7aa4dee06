"""The public entry for training data: load registered datasets (local or remote), convert, sample, mix and split.

Local files are read here; every other source is `engine.data.sources`', the only module that imports `datasets`,
`modelscope`, `openmind` or fsspec, so everything else here works without them.
"""

from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any

from engine.config.model import ModelArguments
from engine.data.converter import MEDIA_KINDS, convert_rows, fill_placeholders
from engine.data.files import read_rows
from engine.data.registry import DatasetAttr, get_dataset_attrs
from engine.data.sources import load_cloud_rows, load_hub_rows, load_script_rows
from engine.errors import DataError
from engine.paths import resolve_dataset_dir

logger = logging.getLogger(__name__)

MIX_STRATEGIES = ("concat", "interleave_under", "interleave_over")


def load_examples(
    dataset: str | list[str],
    dataset_dir: str | Path | None = None,
    *,
    require_response: bool = True,
    max_samples: int | None = None,
    seed: int = 42,
    mix_strategy: str = "concat",
    interleave_probs: list[float] | None = None,
    placeholders: dict[str, str] | None = None,
    hub_tokens: dict[str, str | None] | None = None,
    media_dir: str | Path | None = None,
) -> list[dict]:
    """Canonical examples of one or more registered datasets, sampled and mixed as asked; `hub_tokens` maps a
    source (`hf_hub`, `ms_hub`, `om_hub`) to the token for its private datasets; relative media paths of local
    datasets are found in `media_dir` (default: the dataset folder)."""
    if mix_strategy not in MIX_STRATEGIES:
        raise DataError("mix_strategy_unknown", value=mix_strategy, allowed=", ".join(MIX_STRATEGIES))
    if max_samples is not None and (
        isinstance(max_samples, bool) or not isinstance(max_samples, int) or max_samples < 1
    ):
        raise DataError("max_samples_invalid", value=max_samples)
    attrs = get_dataset_attrs(dataset, dataset_dir)
    groups = []
    for attr in attrs:
        rows = load_rows(attr, dataset_dir, (hub_tokens or {}).get(attr.load_from))
        examples = convert_rows(attr, rows, require_response=require_response)
        if attr.load_from in ("file", "script"):
            resolve_media(examples, media_folder(dataset_dir, media_dir))
        # LLaMA-Factory's order: an entry's num_samples first, then the run's max_samples of what that gave.
        if attr.num_samples is not None:
            examples = _sample(examples, attr.num_samples, seed)
        if max_samples is not None:
            examples = examples[:max_samples]
        if not examples:
            raise DataError("empty_dataset", datasets=attr.name)
        groups.append(examples)
    mixed = _mix(groups, [a.name for a in attrs], mix_strategy, interleave_probs, seed)
    if not mixed:
        raise DataError("empty_dataset", datasets=", ".join(a.name for a in attrs))
    return fill_placeholders(mixed, placeholders) if placeholders else mixed


def load_rows(attr: DatasetAttr, dataset_dir: str | Path | None = None, token: str | None = None) -> list[dict]:
    """Raw rows of one registered dataset, from wherever its entry says (`token`: its hub's, when private)."""
    if attr.load_from == "file":
        if attr.subset or attr.folder or attr.split != "train":
            # As in LLaMA-Factory, which puts every local file into one "train" split.
            logger.warning("Dataset '%s': subset, split and folder apply to hub datasets and script_url folders; "
                           "all of file_name '%s' is read.", attr.name, attr.path_or_id)
        return read_rows(attr, dataset_dir)
    if attr.load_from == "script":
        return load_script_rows(attr, dataset_dir)
    if attr.load_from == "cloud_file":
        return load_cloud_rows(attr)
    return load_hub_rows(attr, token)


def media_folder(dataset_dir: str | Path | None, media_dir: str | Path | None) -> Path:
    """Where relative media paths are looked up: `media_dir` when set, else the dataset folder."""
    return Path(media_dir).absolute() if media_dir else resolve_dataset_dir(dataset_dir).absolute()


def resolve_media(examples: list[dict], folder: Path) -> None:
    """Make each media path that names a file in `folder` absolute, in place (LLaMA-Factory's rule: a path found
    there wins; anything else, URLs included, stays as written, and `check_media` names what is missing)."""
    for example in examples:
        for kind in MEDIA_KINDS:
            items = example.get(kind)
            if items:
                example[kind] = [str(folder / item) if _is_relative_file(folder, item) else item for item in items]


def _is_relative_file(folder: Path, item: str) -> bool:
    """Whether `item` is a path (not a URL) that names a file inside `folder`."""
    if "://" in item or item.startswith("data:"):
        return False
    try:
        return (folder / item).is_file()
    except OSError:  # a name the OS refuses (too long, say) is no file; check_media says so with the row
        return False


def hub_tokens(model_args: ModelArguments) -> dict[str, str | None]:
    """The tokens of a run's config for private hub datasets, by source, as LLaMA-Factory passes them."""
    return {"hf_hub": model_args.hf_hub_token, "ms_hub": model_args.ms_hub_token, "om_hub": model_args.om_hub_token}


def _sample(examples: list[dict], count: int, seed: int) -> list[dict]:
    """`count` examples: a seeded subset, or every example plus seeded repeats when more are asked for."""
    if not examples:
        return examples
    rng = random.Random(seed)
    if count <= len(examples):
        indices = sorted(rng.sample(range(len(examples)), count))
    else:
        indices = list(range(len(examples))) + rng.choices(range(len(examples)), k=count - len(examples))
    # Copies, so a later edit of one repeat does not change the others.
    return [{**examples[i], "messages": [dict(m) for m in examples[i]["messages"]]} for i in indices]


def _mix(
    groups: list[list[dict]], names: list[str], strategy: str, probs: list[float] | None, seed: int
) -> list[dict]:
    """Concatenate or interleave per-dataset example lists."""
    if probs is not None:
        ok = len(probs) == len(groups) and all(isinstance(p, (int, float)) and p >= 0 for p in probs)
        if not ok or sum(probs) <= 0:
            raise DataError("interleave_probs_invalid", probs=probs, count=len(groups), datasets=", ".join(names))
    if strategy == "concat" or len(groups) == 1:
        return [example for group in groups for example in group]
    return _interleave(groups, probs, seed, stop_at_first=strategy == "interleave_under")


def _interleave(groups: list[list[dict]], probs: list[float] | None, seed: int, stop_at_first: bool) -> list[dict]:
    """Take examples in turn (or at random by `probs`) until the first (or every) dataset is used up."""
    rng = random.Random(seed)
    # A dataset with probability 0 is never drawn, so it must not hold up "until every dataset is used up".
    active = [i for i in range(len(groups)) if probs is None or probs[i] > 0]
    weights = [probs[i] for i in active] if probs is not None else None
    position = [0] * len(groups)
    used_up: set[int] = set()
    mixed, turn = [], 0
    while True:
        if weights is None:
            index, turn = active[turn % len(active)], turn + 1
        else:
            index = rng.choices(active, weights=weights)[0]
        if position[index] == len(groups[index]):
            if stop_at_first:
                return mixed
            position[index] = 0  # cycle the datasets already used up
        mixed.append(groups[index][position[index]])
        position[index] += 1
        if position[index] == len(groups[index]):
            used_up.add(index)
            if not stop_at_first and used_up.issuperset(active):
                return mixed


def split_examples(examples: list[dict], val_size: float | int, seed: int = 42) -> tuple[list[dict], list[dict]]:
    """Hold out `val_size` examples (a fraction in [0, 1) or a whole count) for evaluation; returns (train, eval)."""
    count = _val_count(val_size, len(examples))
    if count == 0:
        return list(examples), []
    if count >= len(examples):
        raise DataError("val_size_too_large", value=val_size, val=count, total=len(examples))
    held_out = set(random.Random(seed).sample(range(len(examples)), count))
    train = [e for i, e in enumerate(examples) if i not in held_out]
    evaluation = [e for i, e in enumerate(examples) if i in held_out]
    return train, evaluation


def _val_count(val_size: Any, total: int) -> int:
    """How many rows `val_size` means for `total` rows (a fraction rounds up, so 0.1 of 5 rows is 1)."""
    if isinstance(val_size, bool) or not isinstance(val_size, (int, float)) or val_size < 0:
        raise DataError("val_size_invalid", value=val_size)
    if isinstance(val_size, float) and val_size < 1:
        # Rounds up (0.1 of 5 rows is 1); the epsilon keeps 0.1 * 30 at 3 despite float error.
        return math.ceil(val_size * total - 1e-9)
    if isinstance(val_size, float) and not val_size.is_integer():
        raise DataError("val_size_invalid", value=val_size)
    return int(val_size)
