"""Typed run configs: one flat YAML namespace (LLaMA-Factory's keys) parsed into groups; importable without torch."""

from engine.config.data import DataArguments
from engine.config.evaluation import EvaluationArguments
from engine.config.export import ExportArguments
from engine.config.fields import field_hints, option
from engine.config.finetuning import FinetuningArguments
from engine.config.generation import GeneratingArguments
from engine.config.inference import InferenceArguments
from engine.config.judge import JudgeArguments
from engine.config.loader import (
    GROUPS,
    RunConfig,
    config_from_dict,
    known_keys,
    load_config,
    parse_overrides,
    read_yaml,
    save_config,
)
from engine.config.model import ModelArguments
from engine.config.training import TrainingArguments

__all__ = [
    "GROUPS",
    "DataArguments",
    "EvaluationArguments",
    "ExportArguments",
    "FinetuningArguments",
    "GeneratingArguments",
    "InferenceArguments",
    "JudgeArguments",
    "ModelArguments",
    "RunConfig",
    "TrainingArguments",
    "config_from_dict",
    "field_hints",
    "known_keys",
    "load_config",
    "option",
    "parse_overrides",
    "read_yaml",
    "save_config",
]
