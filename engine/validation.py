"""Validation of a run config before launch: its own values, then against the templates, stages and datasets.

The one module above `engine.config`, `engine.templates`, `engine.data` and `engine.train` that checks a config
across them (the config package itself never imports upwards). Torch-free: the CLI and the studio call the same
`validate_config`, and nothing loads a model or reads dataset rows.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.config import RunConfig
from engine.config.validate import check_values
from engine.data import dataset_kind, get_dataset_attrs
from engine.errors import ConfigError, Setting
from engine.model.methods import get_method, method_module, quantizable_methods
from engine.model.special_tokens import DESCRIPTION_INITS
from engine.templates import get_template
from engine.templates.template import SFT_ONLY_PLUGINS, TEMPLATES
from engine.templates.tools import TOOL_FORMATS
from engine.train import STAGES
from engine.train.method_checks import check_early_stopping, check_optimizer_choice, check_sft_loss_choice

# The package each `report_to` tracker imports.
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "swanlab": "swanlab",
                   "trackio": "trackio"}
# The dataset kind (see `engine.data.dataset_kind`) a stage trains on, where it needs a particular one.
STAGE_DATASET_KINDS = {"rm": "ranking", "dpo": "ranking", "kto": "kto"}


def check_template(config: RunConfig) -> None:
    """The chat template, when named, is registered."""
    if config.model.template:
        get_template(config.model.template)
    if config.data.tool_format and config.data.tool_format not in TOOL_FORMATS:
        raise ConfigError("bad_choice", key=Setting("tool_format"), value=config.data.tool_format,
                          choices=", ".join(TOOL_FORMATS))


MEDIA_STAGES = ("sft", "dpo")  # the stages that train a media model on its media


def run_modalities(config: RunConfig) -> tuple[str | None, frozenset[str]]:
    """The run's template name and the media it reads (from `template`, else the model registry's template)."""
    from engine.model.families import template_for
    from engine.templates.template import TEMPLATES

    name = config.model.template or template_for(config.model.model_name_or_path)
    template = TEMPLATES.get(name or "")
    return name, template.modalities if template is not None else frozenset()


def check_media_run(config: RunConfig, command: str) -> None:
    """What a media model (images, video, audio) cannot do yet: other stages than sft and dpo, packing, GGUF and
    GPTQ."""
    name, modalities = run_modalities(config)
    if not modalities:
        return
    if command == "train" and config.finetuning.stage not in MEDIA_STAGES:
        raise ConfigError("media_stage", stage=config.finetuning.stage, template=name)
    if command == "train" and config.finetuning.stage != "sft" and TEMPLATES[name].mm_plugin in SFT_ONLY_PLUGINS:
        raise ConfigError("media_stage_sft_only", stage=config.finetuning.stage, template=name)
    if command == "train" and config.finetuning.stage == "dpo" and config.finetuning.pref_loss in ("orpo", "simpo"):
        raise ConfigError("media_stage", stage=config.finetuning.pref_loss, template=name)
    if command == "train" and config.data.packing:
        raise ConfigError("media_packing", key=Setting("packing"), template=name)
    if command == "export" and config.export.export_gguf != "none":
        raise ConfigError("media_gguf", template=name, key=Setting("export_gguf"))
    if command == "export" and config.model.export_quantization_bit is not None:
        raise ConfigError("media_gptq", template=name, key=Setting("export_quantization_bit"))


def check_stage(config: RunConfig) -> None:
    """The stage is one this engine can run."""
    if config.finetuning.stage not in STAGES:
        raise ConfigError("stage_not_available", stage=config.finetuning.stage, available=", ".join(STAGES))


def check_datasets(config: RunConfig) -> None:
    """Dataset names are registered and fit the stage (no files are read)."""
    data, stage = config.data, config.finetuning.stage
    # Saved tokens (pt and sft only) stand in for the datasets; an empty folder is named by the data pipeline.
    saved_tokens = bool(data.tokenized_path) and Path(data.tokenized_path).is_dir() and stage in ("pt", "sft")
    if config.training.do_train and not data.dataset and not saved_tokens:
        raise ConfigError("no_dataset", key=Setting("dataset"))
    if config.training.do_predict and not config.training.do_train and not (data.eval_dataset or data.dataset):
        raise ConfigError("no_predict_dataset", key=Setting("eval_dataset"))
    needed = STAGE_DATASET_KINDS.get(stage)
    for names in (data.dataset, data.eval_dataset):
        if not names:
            continue
        for attr in get_dataset_attrs(names, data.dataset_dir):
            kind = dataset_kind(attr)
            if needed and kind != needed:
                raise ConfigError(f"stage_needs_{needed}", name=attr.name, stage=stage)
            # Pre-training reads any text but pairs; SFT would learn the undesirable replies of KTO data too.
            if (stage == "pt" and kind == "ranking") or (stage == "sft" and kind != "sft"):
                raise ConfigError("dataset_stage_mismatch", name=attr.name, kind=kind, stage=stage)


def check_method(config: RunConfig, command: str) -> None:
    """The finetuning method's own checks (its registry record and module), quantization and new special tokens."""
    ft, model = config.finetuning, config.model
    method = get_method(ft.finetuning_type)
    if model.quantization_bit is not None and not method.quantized_base:
        raise ConfigError("quantization_needs_adapter", method=ft.finetuning_type,
                          methods=", ".join(quantizable_methods()))
    method_module(ft.finetuning_type).check(model, ft, command == "train" and config.training.do_train)
    tokens_file = model.new_special_tokens_config
    if tokens_file and not Path(tokens_file).expanduser().is_file():
        raise ConfigError("special_tokens_config_missing", key=Setting("new_special_tokens_config"), path=tokens_file)
    if not tokens_file and model.init_special_tokens in DESCRIPTION_INITS:
        raise ConfigError("special_tokens_init_needs_config", value=model.init_special_tokens,
                          key=Setting("init_special_tokens"), config_key=Setting("new_special_tokens_config"))


def check_packages(config: RunConfig) -> None:
    """Optional packages a config asks for are installed (found without importing them)."""
    if config.training.deepspeed and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("deepspeed_not_installed", key=Setting("deepspeed"), path=config.training.deepspeed)
    ft, train = config.finetuning, config.training
    wanted = [("use_apollo", ft.use_apollo, "apollo_torch", "apollo"),
              ("use_adam_mini", ft.use_adam_mini, "adam_mini", "adam-mini"),
              ("use_swanlab", ft.use_swanlab or train.report_to == "swanlab", "swanlab", "trackers"),
              ("report_to", train.report_to in TRACKER_MODULES, TRACKER_MODULES.get(train.report_to), "trackers")]
    for key, asked, module, extra in wanted:
        if asked and module and importlib.util.find_spec(module) is None:
            raise ConfigError("package_not_installed", key=Setting(key), package=module.replace("_", "-"),
                              extra=extra)


def validate_config(config: RunConfig, command: str = "train") -> RunConfig:
    """Run every check that needs no model and no dataset rows; raise the first problem found."""
    check_values(config, command)
    check_template(config)
    check_method(config, command)
    check_media_run(config, command)
    if command == "train":
        check_stage(config)
        check_datasets(config)
        check_optimizer_choice(config)
        check_sft_loss_choice(config)
        check_early_stopping(config)
        check_packages(config)
    return config
