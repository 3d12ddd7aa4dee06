"""GPTQ export: calibrate and quantize the merged model to `export_quantization_bit` bits (GPU machines).

transformers quantizes through optimum's GPTQ quantizer with GPT-QModel's kernels when a model is loaded with a
`GPTQConfig`; both packages come with the `gptq` extra (`pip install -e ".[gptq]"`). Calibration text comes from
`export_quantization_dataset`: a dataset registered in dataset_info.json, or a .json/.jsonl/.txt file.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)


def check_gptq_available() -> None:
    """Raise a ModelError naming what is missing (packages or a CUDA GPU) for a GPTQ export."""
    missing = [name for name in ("optimum", "gptqmodel") if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelError("export_gptq_not_installed", packages=", ".join(missing))
    import torch

    if not torch.cuda.is_available():
        raise ModelError("export_gptq_needs_gpu")


def _row_text(row: dict) -> str:
    if isinstance(row.get("text"), str):
        return row["text"]
    return "\n".join(value for value in row.values() if isinstance(value, str) and value.strip())


def calibration_texts(config: RunConfig) -> list[str]:
    """Up to `export_quantization_nsamples` texts from `export_quantization_dataset`."""
    from engine.data import example_text, load_examples
    from engine.data.files import read_file

    name = config.model.export_quantization_dataset
    count = config.model.export_quantization_nsamples
    if not name:
        raise ConfigError("export_gptq_needs_dataset")
    path = Path(name).expanduser()
    if path.is_file():
        rows, _ = read_file(path, str(path), path.name)
        texts = [_row_text(row) for row in rows]
    else:
        examples = load_examples(name, config.data.dataset_dir, require_response=False, max_samples=count)
        texts = [example_text(example) for example in examples]
    texts = [text for text in texts if text.strip()][:count]
    if not texts:
        raise ConfigError("export_gptq_dataset_empty", name=name)
    return texts


def calibration_samples(texts: list[str], tokenizer: Any, max_length: int) -> list[dict[str, list[int]]]:
    """Tokenized calibration samples of at most `max_length` tokens, as optimum takes them."""
    samples = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"]
        if ids:
            samples.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return samples


def quantize_gptq(merged_dir: Path, export_dir: Path, config: RunConfig, tokenizer: Any) -> list[str]:
    """Load the merged model from `merged_dir` with a GPTQConfig (which calibrates) and save it to `export_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, GPTQConfig

    from engine.export.merge import GB, weight_files

    check_gptq_available()
    samples = calibration_samples(calibration_texts(config), tokenizer, config.model.export_quantization_maxlen)
    quantization = GPTQConfig(bits=config.model.export_quantization_bit, tokenizer=tokenizer, dataset=samples,
                              model_seqlen=config.model.export_quantization_maxlen)
    logger.info("GPTQ: calibrating %d-bit weights on %d samples.", config.model.export_quantization_bit,
                len(samples))
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float16, device_map="auto",
                                                 quantization_config=quantization)
    model.save_pretrained(export_dir, max_shard_size=config.model.export_size * GB)
    return weight_files(export_dir)
