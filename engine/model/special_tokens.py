"""New special tokens described in a YAML file (`new_special_tokens_config`), and how their embedding rows start.

The file maps each token to a description, `{"<think>": "the start of the model's reasoning", ...}`. Its tokens
are added as special tokens (they replace `add_special_tokens`), so each encodes as one id. The rows the
model gets for them start as `init_special_tokens` says:

- `noise_init`: the mean of the existing rows plus small Gaussian noise (std 1/sqrt(hidden size));
- `desc_init`: the mean of the rows of the description's tokens (a head start towards the token's meaning);
- `desc_init_w_noise`: that mean plus the same noise.

Both the input embeddings and, when it is not tied to them, the output head are initialised, each from its own
rows. Only tokens new to the tokenizer are touched: a token it already had keeps its trained row.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import yaml

from engine.config.model import ModelArguments
from engine.errors import ModelError, Setting

logger = logging.getLogger(__name__)

NEW_TOKENS_ATTRIBUTE = "studio_new_special_tokens"
"""The tokenizer attribute holding {token: description} of the tokens `add_described_tokens` added."""
NOISE_SEED = 0
"""Noise comes from its own seeded generator: a run and a later chat start the same untrained rows."""
DESCRIPTION_INITS = ("desc_init", "desc_init_w_noise")


def read_special_tokens_config(path: str) -> dict[str, str]:
    """{token: description} from the YAML file at `path`, checked."""
    key = Setting("new_special_tokens_config")
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError("special_tokens_config_missing", key=key, path=path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError("special_tokens_config_unreadable", key=key, path=path,
                         error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    if not isinstance(data, dict) or not data:
        raise ModelError("special_tokens_config_not_mapping", key=key, path=path)
    tokens: dict[str, str] = {}
    for token, description in data.items():
        if not isinstance(token, str) or not token.strip() or isinstance(description, (dict, list)):
            raise ModelError("special_tokens_config_not_mapping", key=key, path=path)
        tokens[token.strip()] = "" if description is None else str(description)
    return tokens


def special_tokens_to_add(model_args: ModelArguments) -> dict[str, str]:
    """{token: description} of the special tokens to add: the YAML file's, else `add_special_tokens` (no description).

    Raises when a description-based `init_special_tokens` has no file to take descriptions from.
    """
    if model_args.new_special_tokens_config:
        tokens = read_special_tokens_config(model_args.new_special_tokens_config)
        if model_args.add_special_tokens:
            logger.warning("new_special_tokens_config and add_special_tokens are both set: adding the file's tokens "
                           "(%s) only.", ", ".join(tokens))
        return tokens
    if model_args.init_special_tokens in DESCRIPTION_INITS:
        raise ModelError("special_tokens_init_needs_config", value=model_args.init_special_tokens,
                         key=Setting("init_special_tokens"), config_key=Setting("new_special_tokens_config"))
    return {token: "" for token in (t.strip() for t in (model_args.add_special_tokens or "").split(",")) if token}


def add_described_tokens(tokenizer: Any, model_args: ModelArguments) -> int:
    """Add the special tokens of `model_args` to `tokenizer`; returns how many were new to it.

    With `new_special_tokens_config`, the new ones and their descriptions are remembered on the tokenizer
    (`NEW_TOKENS_ATTRIBUTE`) for `init_new_token_rows`.
    """
    tokens = special_tokens_to_add(model_args)
    if not tokens:
        return 0
    vocab = tokenizer.get_vocab()
    new = {token: description for token, description in tokens.items() if token not in vocab}
    added = tokenizer.add_special_tokens({"extra_special_tokens": list(tokens)}, replace_extra_special_tokens=False)
    if model_args.new_special_tokens_config:
        setattr(tokenizer, NEW_TOKENS_ATTRIBUTE, new)
        kept = [token for token in tokens if token not in new]
        if kept:
            logger.info("Special tokens already in the vocabulary keep their embeddings: %s.", ", ".join(kept))
    return added


def _noise(shape: tuple[int, ...], generator: Any) -> Any:
    import torch

    return torch.randn(shape, generator=generator) / math.sqrt(shape[-1])


def _init_rows(weight: Any, new_ids: dict[int, list[int]], old_rows: int, method: str) -> None:
    """Set the row of each new id in `weight` (in place) from its description's ids (empty: from the mean)."""
    import torch

    skip = torch.zeros(weight.shape[0], dtype=torch.bool, device=weight.device)
    skip[list(new_ids)] = True
    skip[old_rows:] = True
    mean = weight[~skip].float().mean(dim=0)
    generator = torch.Generator().manual_seed(NOISE_SEED)
    for row, ids in new_ids.items():
        valid = [i for i in ids if i < old_rows and not skip[i]]
        if method in DESCRIPTION_INITS and valid:
            value = weight[valid].float().mean(dim=0)
        else:
            value = mean.clone()
        if method != "desc_init":
            value += _noise(tuple(value.shape), generator).to(value.device)
        weight[row] = value.to(device=weight.device, dtype=weight.dtype)


def init_new_token_rows(model: Any, tokenizer: Any, model_args: ModelArguments, old_rows: int) -> None:
    """Initialise the embedding rows (and the untied output head's) of the tokens `add_described_tokens` added.

    `old_rows` is the number of rows before the embeddings were resized (rows from there on are new anyway).
    """
    import torch

    new: dict[str, str] = getattr(tokenizer, NEW_TOKENS_ATTRIBUTE, None) or {}
    embeddings = model.get_input_embeddings()
    if not new or embeddings is None:
        return
    method = model_args.init_special_tokens
    new_ids: dict[int, list[int]] = {}
    for token, description in new.items():
        ids = tokenizer(description, add_special_tokens=False)["input_ids"] if description.strip() else []
        if method in DESCRIPTION_INITS and not ids:
            logger.warning("Special token %s has no description: its row starts at the mean of the others.", token)
        new_ids[tokenizer.convert_tokens_to_ids(token)] = list(ids)
    weights = [embeddings.weight]
    head = model.get_output_embeddings()
    if head is not None and getattr(head, "weight", None) is not None and head.weight is not embeddings.weight:
        if head.weight.shape[0] == embeddings.weight.shape[0]:  # a reward model's score head has no token rows
            weights.append(head.weight)
    with torch.no_grad():
        for weight in weights:
            _init_rows(weight.data, new_ids, old_rows, method)
    logger.info("Initialised the rows of %d new special tokens (%s)%s.", len(new_ids), method,
                "" if len(weights) == 1 else ", input embeddings and output head")
