"""Merge LoRA adapters into the base model and save a self-contained model folder.

The folder holds the weights (safetensors shards of at most `export_size` GB, or `.bin` with
`export_legacy_format`), the config and generation config, the tokenizer, the chat template as
`chat_template.jinja`, and `studio_model.json` naming the studio template, so Chat, vLLM, transformers and a
later export all render conversations the way training did.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import RunConfig, read_yaml
from engine.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

MODEL_INFO_FILE = "studio_model.json"
GB = 10**9  # the Hub's "GB" in max_shard_size is decimal
FLOAT_DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class ExportSource:
    """What an export starts from: the loaded model (adapters attached), its tokenizer and template."""

    model: Any
    tokenizer: Any
    template: Any
    model_path: str
    dtype: Any
    run_dir: Path | None


def source_run_dir(adapter_name_or_path: str | None) -> Path | None:
    """The training run folder the (last) adapter comes from, when it is one (it holds config.yaml)."""
    names = [name.strip() for name in (adapter_name_or_path or "").split(",") if name.strip()]
    if not names:
        return None
    folder = Path(names[-1]).expanduser()
    for candidate in (folder, folder.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def run_template(run_dir: Path | None) -> str | None:
    """The template the run folder's config.yaml names (None when it names none or cannot be read)."""
    if run_dir is None:
        return None
    try:
        return read_yaml(run_dir / "config.yaml").get("template") or None
    except ConfigError:
        return None


def export_dtype(config: RunConfig, model_path: str) -> Any:
    """The dtype of the exported weights: `infer_dtype`, or on `auto` the base model's own (float32 if unknown)."""
    import torch

    from engine.model.loader import load_config

    name = config.model.infer_dtype
    if name == "auto":
        own = getattr(load_config(config.model, model_path), "dtype", None)
        own = str(own).replace("torch.", "") if own is not None else "float32"
        name = own if own in FLOAT_DTYPES else "float32"
    return getattr(torch, name)


def check_mergeable(config: RunConfig) -> None:
    """Refuse to merge into a quantized base: the merged weights would be rounded to the base's few bits."""
    bits = config.model.quantization_bit
    if bits is not None:
        raise ModelError("export_quantized_base", bits=bits)


def load_source(config: RunConfig) -> ExportSource:
    """Tokenizer → template → model with its adapters, in the export dtype, on `export_device`."""
    import torch

    from engine.model.chat_template import load_template, template_name_for
    from engine.model.loader import load_model, load_tokenizer, resolve_model_folder

    check_mergeable(config)
    model_path = resolve_model_folder(config.model)
    run_dir = source_run_dir(config.model.adapter_name_or_path)
    tokenizer = load_tokenizer(config.model)
    name = template_name_for(config.model.template or run_template(run_dir), model_path, tokenizer)
    template = load_template(name, model_path, tokenizer)
    dtype = export_dtype(config, model_path)
    model = load_model(tokenizer, config.model, config.finetuning, is_trainable=False, compute_dtype=dtype)
    if config.model.export_device == "auto":
        if torch.cuda.is_available():
            model = model.to("cuda")
        else:
            logger.info("export_device: auto found no GPU; merging on the CPU.")
    return ExportSource(model, tokenizer, template, model_path, dtype, run_dir)


def merge_adapters(model: Any) -> Any:
    """The plain transformers model with every LoRA adapter folded into its weights."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
        logger.info("Merged the LoRA adapter into the base weights.")
    return model


def set_generation_stops(model: Any, tokenizer: Any, template: Any) -> None:
    """Make `generate` stop where the template's replies end (its stop words and the tokenizer's eos)."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] + [vocab[word] for word in template.stop_words if word in vocab]
    ids = list(dict.fromkeys(i for i in ids if i is not None))
    generation = getattr(model, "generation_config", None)
    if generation is None or not ids:
        return
    generation.eos_token_id = ids[0] if len(ids) == 1 else ids
    generation.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = ids[0]


def save_merged(source: ExportSource, export_dir: Path, config: RunConfig,
                max_shard_size: int | None = None) -> list[str]:
    """Save the merged model, tokenizer, chat template and studio_model.json; returns the weight file names.

    `max_shard_size` (bytes) overrides `export_size` GB (tests use a few hundred kB to get several shards).
    """
    from engine.templates.jinja import to_jinja

    model, tokenizer, template = source.model, source.tokenizer, source.template
    export_dir.mkdir(parents=True, exist_ok=True)
    set_generation_stops(model, tokenizer, template)
    model.config.use_cache = True
    shard = max_shard_size or config.model.export_size * GB
    model.save_pretrained(export_dir, max_shard_size=shard)
    if not template.from_tokenizer:
        tokenizer.chat_template = to_jinja(template)
    tokenizer.padding_side = "left"  # what generation wants; training code sets its own side
    tokenizer.save_pretrained(export_dir)
    if template.modalities:  # the media processor travels with a media model
        from engine.multimodal.plugins import save_media_processor

        save_media_processor(template, tokenizer, config.model, export_dir)
    info = {"template": template.name, "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
            "stop_tokens": list(dict.fromkeys([*template.stop_words, tokenizer.eos_token])),
            "base_model": config.model.model_name_or_path,
            "adapters": config.model.adapter_name_or_path, "dtype": str(source.dtype).replace("torch.", "")}
    (export_dir / MODEL_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    if config.model.export_legacy_format:
        return to_legacy_format(export_dir)
    return weight_files(export_dir)


def weight_files(folder: Path) -> list[str]:
    """The weight files of a saved model folder, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))


def to_legacy_format(folder: Path) -> list[str]:
    """Rewrite the safetensors shards of `folder` as PyTorch `.bin` shards (transformers 5 saves only safetensors)."""
    import torch
    from safetensors.torch import load_file

    index_path = folder / "model.safetensors.index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        renames = {name: name.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
                   for name in sorted(set(index["weight_map"].values()))}
        index["weight_map"] = {key: renames[name] for key, name in index["weight_map"].items()}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        index_path.unlink()
    else:
        renames = {"model.safetensors": "pytorch_model.bin"}
    for old, new in renames.items():
        torch.save(load_file(folder / old), folder / new)  # one shard in memory at a time
        (folder / old).unlink()
    return sorted(renames.values())
