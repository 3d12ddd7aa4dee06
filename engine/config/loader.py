"""Read a flat YAML config (plus `key=value` overrides) into typed groups, and write it back."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.atomic_write import write_text_atomic
from engine.config.data import DataArguments
from engine.config.declined import DECLINED, is_off
from engine.config.evaluation import EvaluationArguments
from engine.config.export import ExportArguments
from engine.config.fields import coerce_value
from engine.config.finetuning import FinetuningArguments
from engine.config.generation import GeneratingArguments
from engine.config.inference import InferenceArguments
from engine.config.judge import JudgeArguments
from engine.config.model import ModelArguments
from engine.config.trainer_fields import SEQ2SEQ_ONLY, TRAINER_FIELDS
from engine.config.training import TrainingArguments
from engine.errors import ConfigError, Phrase, Setting

GROUPS: dict[str, type] = {
    "model": ModelArguments,
    "data": DataArguments,
    "finetuning": FinetuningArguments,
    "training": TrainingArguments,
    "generation": GeneratingArguments,
    "evaluation": EvaluationArguments,
    "inference": InferenceArguments,
    "export": ExportArguments,
    "judge": JudgeArguments,
}

# Names older transformers / LLaMA-Factory configs still carry, mapped to today's key.
ALIASES: dict[str, str] = {
    "evaluation_strategy": "eval_strategy",
    "no_cuda": "use_cpu",
    "max_seq_length": "cutoff_len",
    "torch_dtype": "infer_dtype",
    "use_kv_cache": "use_cache",
}


@dataclass
class RunConfig:
    """One run's settings, grouped by concern; the flat YAML namespace is the union of the groups' fields."""

    model: ModelArguments
    data: DataArguments
    finetuning: FinetuningArguments
    training: TrainingArguments
    generation: GeneratingArguments
    evaluation: EvaluationArguments
    inference: InferenceArguments
    export: ExportArguments
    judge: JudgeArguments
    # transformers training arguments we have no field for, passed to the Trainer unchanged (see trainer_fields).
    passthrough: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self, *, include_secrets: bool = True) -> dict[str, Any]:
        """The flat key → value mapping, in group order, then the passed-through trainer arguments."""
        flat: dict[str, Any] = {}
        for group_name in GROUPS:
            group = getattr(self, group_name)
            for f in dataclasses.fields(group):
                if f.metadata.get("secret") and not include_secrets:
                    continue
                flat[f.name] = getattr(group, f.name)
        for key, value in self.passthrough.items():
            if include_secrets or key not in SECRET_TRAINER_FIELDS:
                flat[key] = value
        return flat


def _key_index() -> dict[str, tuple[str, type, Any]]:
    """key → (group name, group class, resolved type)."""
    index: dict[str, tuple[str, type, Any]] = {}
    for group_name, cls in GROUPS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            index[f.name] = (group_name, cls, hints[f.name])
    return index


KEYS = _key_index()
# Trainer arguments passed through: every transformers field we do not define, bar the Seq2Seq-only ones.
PASSTHROUGH_KEYS = frozenset(TRAINER_FIELDS) - KEYS.keys() - set(SEQ2SEQ_ONLY) - DECLINED.keys()
SECRET_TRAINER_FIELDS = frozenset({"hub_token"})
_KINDS: dict[str, Any] = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "list": list}


def trainer_field_type(key: str) -> Any:
    """The type a passed-through trainer argument is coerced to (Any when transformers takes several)."""
    kind = TRAINER_FIELDS[key][0]
    base = _KINDS.get(kind.rstrip("?"), Any)
    return base | None if kind.endswith("?") and base is not Any else base


def known_keys() -> list[str]:
    """Every valid config key."""
    return sorted(KEYS)


def suggest_key(key: str) -> str:
    """The closest valid key, for an 'unknown key' message."""
    matches = difflib.get_close_matches(key, [*KEYS, *ALIASES, *PASSTHROUGH_KEYS], n=1, cutoff=0.5)
    return ALIASES.get(matches[0], matches[0]) if matches else ""


def config_from_dict(raw: dict[str, Any], *, source: str = "config") -> RunConfig:
    """Validate keys and types of a flat mapping and build the typed groups (defaults fill the rest)."""
    if not isinstance(raw, dict):
        raise ConfigError("not_a_mapping", source=source)
    values: dict[str, dict[str, Any]] = {name: {} for name in GROUPS}
    passthrough: dict[str, Any] = {}
    for key, value in raw.items():
        key = ALIASES.get(str(key), str(key))
        if key in DECLINED:
            if not is_off(key, value):
                entry = DECLINED[key]
                raise ConfigError("feature_not_built", key=Setting(key), value=value, feature=Phrase(entry.feature),
                                  instead=Phrase(entry.instead))
            continue
        if key in PASSTHROUGH_KEYS:
            passthrough[key] = coerce_value(key, value, trainer_field_type(key))
            continue
        if key not in KEYS:
            suggestion = suggest_key(key)
            if suggestion:
                raise ConfigError("unknown_key", key=key, source=source, suggestion=suggestion)
            raise ConfigError("unknown_key_no_match", key=key, source=source)
        group_name, _, tp = KEYS[key]
        values[group_name][key] = coerce_value(key, value, tp)
    training = values["training"]
    if "do_train" not in training and (training.get("do_predict") or training.get("do_eval")):
        training["do_train"] = False  # a config that only asks for predictions or evaluation trains nothing
    groups = {name: cls(**values[name]) for name, cls in GROUPS.items()}
    return RunConfig(**groups, passthrough=passthrough)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML config file, turning every I/O or syntax problem into a ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("config_not_found", path=str(path))
    if path.is_dir():
        raise ConfigError("config_is_folder", path=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError("config_not_utf8", path=str(path), offset=err.start) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else "?"
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError("yaml_syntax", path=str(path), line=line, problem=problem) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("not_a_mapping", source=str(path))
    return data


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`key=value` strings from the command line; values are read as YAML scalars (`1e-4`, `true`, `a,b`)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_") if sep else key
        if not sep or not key:
            raise ConfigError("bad_override", item=item)
        try:
            parsed[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed[key] = value
    return parsed


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> RunConfig:
    """Read a YAML file and apply overrides on top; keys and types are checked, combinations are not."""
    raw = read_yaml(path) if path is not None else {}
    if isinstance(overrides, list):
        extra = parse_overrides(overrides)
        source = "command line"
    else:
        extra = dict(overrides or {})
        source = "overrides"
    if extra:
        config_from_dict(extra, source=source)  # name unknown override keys as such, not as the file's
    return config_from_dict({**raw, **extra}, source=str(path) if path is not None else source)


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the resolved config as flat YAML, secrets left out, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, yaml.safe_dump(config.to_dict(include_secrets=False), sort_keys=False, allow_unicode=True))
