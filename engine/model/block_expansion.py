"""LLaMA Pro block expansion: add decoder blocks that start as the identity, for `use_llama_pro` training.

`studio expand-model --model_name_or_path M --output_dir D --num_expand N` inserts N blocks, one after every
`layers / N` original blocks. Each new block is a copy of the block before it with its output projections
(`o_proj`, `down_proj`) zeroed: what it adds to the residual stream is zero, so the expanded model gives the
same logits as the original (checked on a short input before anything is saved). Training with
`finetuning_type: freeze`, `freeze_trainable_layers: N` and `use_llama_pro: true` then trains only the new
blocks, so the original ones keep what they know (see `engine.model.methods.weights.llama_pro_layer_ids`).

The folder is written next to its destination and renamed into place, so an interrupted expansion leaves no
half-written model behind.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.config.model import ModelArguments
from engine.errors import ModelError
from engine.model.load_errors import translated_errors
from engine.model.loader import load_config, resolve_model_folder
from engine.model.methods.weights import find_decoder_layers, llama_pro_layer_ids

logger = logging.getLogger(__name__)

ZEROED_PROJECTIONS = ("o_proj", "down_proj")
"""Modules whose output a decoder block adds to the residual stream (attention output, MLP/expert output)."""
COPIED_FILES = ("studio_model.json",)
"""Files of the source folder that travel with the weights (the chat template the studio uses)."""
IDENTITY_TOLERANCE = 1e-3


def _check_request(config: Any, name: str, num_expand: int, out: Path) -> int:
    """The original layer count, after checking that `num_expand` blocks can be added and `out` is free."""
    if num_expand < 1:
        raise ModelError("expand_bad_count", value=num_expand)
    if getattr(config, "quantization_config", None):
        raise ModelError("expand_quantized", name=name)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    count = getattr(text, "num_hidden_layers", None)
    if not isinstance(count, int) or count < 1:
        raise ModelError("expand_no_layers", model_type=str(getattr(config, "model_type", "?")))
    if count % num_expand:
        raise ModelError("expand_not_divisible", name=name, layers=count, expanded=num_expand)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError("expand_output_not_empty", path=str(out))
    return count


def _identity_block(block: Any, index: int, model_type: str) -> Any:
    """A copy of `block` whose output projections are zero (weights and biases), numbered `index`."""
    import torch

    new = copy.deepcopy(block)
    zeroed = 0
    with torch.no_grad():
        for name, param in new.named_parameters():
            if any(part in ZEROED_PROJECTIONS for part in name.split(".")):
                param.zero_()
                zeroed += 1
    if not zeroed:
        names = sorted({name.split(".")[-2] for name, _ in block.named_parameters() if "." in name})
        raise ModelError("expand_no_projections", model_type=model_type, names=", ".join(names))
    for module in new.modules():
        if hasattr(module, "layer_idx"):  # the key/value cache addresses layers by this number
            module.layer_idx = index
    return new


def _insert_blocks(model: Any, num_expand: int) -> list[int]:
    """Put an identity copy after every `layers / num_expand` blocks; returns the new blocks' indices."""
    import torch

    model_type = str(getattr(model.config, "model_type", "?"))
    try:
        prefix, count = find_decoder_layers(model)
    except ModelError as exc:
        raise ModelError("expand_no_layers", model_type=model_type) from exc
    parent_name, _, attribute = prefix.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = list(getattr(parent, attribute))
    group = count // num_expand
    blocks: list[Any] = []
    sources: list[int] = []
    for i, block in enumerate(old):
        blocks.append(block)
        sources.append(i)
        for module in block.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = len(blocks) - 1
        if (i + 1) % group == 0:
            blocks.append(_identity_block(block, len(blocks), model_type))
            sources.append(i)
    setattr(parent, attribute, torch.nn.ModuleList(blocks))
    total = count + num_expand
    text = model.config.get_text_config()
    text.num_hidden_layers = total
    layer_types = getattr(text, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == count:  # e.g. sliding or full attention per layer
        text.layer_types = [layer_types[i] for i in sources]
    added = [j for j in range(total) if j and sources[j] == sources[j - 1]]
    assert added == llama_pro_layer_ids(total, num_expand)  # the blocks use_llama_pro will train
    return added


def _logits(model: Any) -> Any:
    import torch

    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.arange(1, 9).unsqueeze(0) * 7919 % max(vocab - 1, 1) + 1  # a fixed input spread over the vocab
    with torch.no_grad():
        return model(input_ids=ids.to(model.device), use_cache=False).logits.float()


def _save(model: Any, tokenizer: Any, source: str, out: Path) -> None:
    """Write the model, tokenizer and studio files to a sibling temporary folder, then rename it to `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.expanding-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name in COPIED_FILES:
            if os.path.isfile(os.path.join(source, name)):
                shutil.copy(os.path.join(source, name), tmp / name)
        os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only
        if out.is_dir():  # checked empty before the work began
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def expand_model(model_name_or_path: str, output_dir: str | Path, num_expand: int, *,
                 trust_remote_code: bool = False) -> Path:
    """Save `model_name_or_path` with `num_expand` identity blocks added into `output_dir`; returns the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_args = ModelArguments(model_name_or_path=model_name_or_path, trust_remote_code=trust_remote_code)
    out = Path(os.path.abspath(Path(output_dir).expanduser()))
    path = resolve_model_folder(model_args)
    config = load_config(model_args, path)
    count = _check_request(config, model_name_or_path, num_expand, out)
    folder = path if os.path.isdir(path) else None
    with translated_errors(model_name_or_path, model_args, folder):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype="auto",
                                                     trust_remote_code=trust_remote_code)
    model.eval()
    before = _logits(model)
    added = _insert_blocks(model, num_expand)
    difference = (_logits(model) - before).abs().max().item()
    if difference > IDENTITY_TOLERANCE * max(before.abs().max().item(), 1.0):
        raise ModelError("expand_not_identity", model_type=str(getattr(config, "model_type", "?")),
                         difference=f"{difference:.3g}")
    _save(model, tokenizer, path if folder else "", out)
    logger.info("Expanded %s from %d to %d layers (new blocks: %s) into %s.", model_name_or_path, count,
                count + num_expand, ", ".join(map(str, added)), out)
    return out
