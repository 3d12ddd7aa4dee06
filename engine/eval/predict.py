"""Generate a reply for every eval row, save them beside the references, and score them (BLEU-4, ROUGE-1/2/L).

Writes `generated_predictions.jsonl` (one `{"prompt", "predict", "label"}` per row, appended batch by batch, so
an aborted run keeps what it generated) and `predict_results.json` (`predict_bleu-4`, `predict_rouge-1`,
`predict_rouge-2`, `predict_rouge-l`, `predict_samples`, `predict_runtime`, `predict_samples_per_second`,
`predict_steps_per_second`), the files and keys LLaMA-Factory's predictions have.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.runfolder import merge_all_results, results_file, write_results

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "generated_predictions.jsonl"
PREDICT_RESULTS_FILE = results_file("predict")
RESPONSE_ROLES = ("assistant", "function")


def prediction_examples(config: RunConfig, *, after_training: bool = False) -> list[dict]:
    """The rows to predict: eval_dataset, else the val_size share of dataset, else (no training) all of dataset."""
    from engine.data import load_examples
    from engine.data.loader import hub_tokens
    from engine.data.pipeline import load_split_examples

    data = config.data
    if data.eval_dataset or data.val_size:
        return load_split_examples(config, require_response=True)[1]
    if after_training or not data.dataset:
        return []
    return load_examples(data.dataset, data.dataset_dir, require_response=True, max_samples=data.max_samples,
                         seed=config.training.seed,
                         placeholders={"name": data.identity_name, "author": data.identity_author},
                         hub_tokens=hub_tokens(config.model), media_dir=data.media_dir)


def prompt_and_label(example: dict) -> tuple[list[dict], str]:
    """The conversation up to the reply to predict, and that reply (for ranking data: the chosen one)."""
    messages = list(example["messages"])
    if example.get("chosen") is not None:
        return messages, str(example["chosen"])
    if messages and messages[-1]["role"] in RESPONSE_ROLES:
        return messages[:-1], str(messages[-1]["content"])
    return messages, ""


def encode_prompt(example: dict, template: Any, tokenizer: Any, config: RunConfig) -> tuple[list[int], str]:
    """Prompt ids (at most cutoff_len: a longer prompt keeps its head and tail) and the reference reply."""
    from engine.templates import render_prompt_ids

    messages, label = prompt_and_label(example)
    ids = render_prompt_ids(template, tokenizer, messages, example.get("system") or config.data.default_system,
                            example.get("tools"), config.data.enable_thinking)
    limit = config.data.cutoff_len
    if len(ids) > limit:
        ids = ids[: limit // 2] + ids[len(ids) - (limit - limit // 2):]
    return ids, label


def stop_token_ids(tokenizer: Any, template: Any) -> list[int]:
    """eos and the template's stop words (fix_tokenizer made each a single token)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for word in template.stop_words:
        token = tokenizer.convert_tokens_to_ids(word)
        if isinstance(token, int) and token != tokenizer.unk_token_id and token not in ids:
            ids.append(token)
    return ids


def generation_config(config: RunConfig, tokenizer: Any, template: Any) -> Any:
    """transformers' GenerationConfig from the generation keys (sampling settings only when sampling); the beam
    width is `eval_num_beams`, else `num_beams`."""
    from transformers import GenerationConfig

    g = config.generation
    beams = config.data.eval_num_beams or g.num_beams
    kwargs: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "num_beams": beams,
                              "repetition_penalty": g.repetition_penalty, "eos_token_id": stop_token_ids(tokenizer,
                                                                                                         template),
                              "pad_token_id": tokenizer.pad_token_id, "do_sample": g.do_sample and g.temperature > 0}
    if kwargs["do_sample"]:
        kwargs.update(temperature=g.temperature, top_p=g.top_p, top_k=g.top_k)
    if beams > 1:
        kwargs["length_penalty"] = g.length_penalty
    return GenerationConfig(**kwargs)


def generate_batch(model: Any, tokenizer: Any, batch: list[list[int]], gen_config: Any, template: Any,
                   skip_special_tokens: bool) -> list[str]:
    """Replies to a batch of prompt ids (left padding), cut at the first stop word."""
    import torch

    width = max(len(ids) for ids in batch)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    with torch.inference_mode():
        output = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen_config)
    replies = []
    for row in output[:, width:].tolist():
        text = tokenizer.decode(row, skip_special_tokens=skip_special_tokens)
        for word in [*template.stop_words, tokenizer.eos_token or ""]:
            if word and word in text:
                text = text[: text.index(word)]
        replies.append(text.strip())
    return replies


def media_predictor(model: Any, tokenizer: Any, template: Any, config: RunConfig) -> Any:
    """example → the model's reply to its prompt with its media (the chat backend's media path, greedy unless the
    generation settings sample)."""
    from engine.inference.backend import Sampling
    from engine.inference.hf_backend import HFBackend
    from engine.multimodal.plugins import get_plugin

    plugin = get_plugin(template, tokenizer, config.model)
    backend = HFBackend(model, tokenizer, template, Sampling.from_config(config.generation), "model", plugin)
    backend.context_length = None  # prompts are not cut here: the media tokens must stay whole

    def reply(example: dict) -> str:
        messages, _ = prompt_and_label(example)
        media = {kind: list(example.get(kind) or []) for kind in plugin.kinds}
        completion = backend.generate(messages, example.get("system") or config.data.default_system,
                                      example.get("tools"), enable_thinking=config.data.enable_thinking,
                                      media=media)
        return completion.text.strip()

    return reply


def predict(model: Any, tokenizer: Any, template: Any, examples: list[dict], config: RunConfig, run_dir: Path, *,
            abort: Any = None, log_progress: bool = True) -> dict[str, Any]:
    """Generate for every example in batches, write both files, return the metrics (of the rows done)."""
    from transformers import set_seed

    from engine.errors import StudioError
    from engine.eval.metrics import require_metric_packages, score_corpus
    from engine.eval.progress import ProgressLog

    run_dir = Path(run_dir)
    encoded = [encode_prompt(example, template, tokenizer, config) for example in examples]
    batch_size = config.training.per_device_eval_batch_size
    progress = ProgressLog(run_dir, -(-len(encoded) // batch_size), stage="predict", enabled=log_progress)
    gen_config = generation_config(config, tokenizer, template)
    media = media_predictor(model, tokenizer, template, config) if template.modalities else None
    set_seed(config.training.seed)
    model.eval()
    predictions: list[str] = []
    start = time.monotonic()
    with open(run_dir / PREDICTIONS_FILE, "w", encoding="utf-8") as out:
        for first in range(0, len(encoded), batch_size):
            if abort is not None and abort.requested:
                logger.info("Stopped after %d of %d rows.", len(predictions), len(encoded))
                break
            batch = encoded[first:first + batch_size]
            if media is not None:  # one row at a time, each with its own images, video or audio
                replies = [media(example) for example in examples[first:first + batch_size]]
            else:
                replies = generate_batch(model, tokenizer, [ids for ids, _ in batch], gen_config, template,
                                         config.generation.skip_special_tokens)
            for (ids, label), reply in zip(batch, replies, strict=True):
                prompt = tokenizer.decode(ids, skip_special_tokens=False)
                out.write(json.dumps({"prompt": prompt, "predict": reply, "label": label}, ensure_ascii=False) + "\n")
            out.flush()
            predictions += replies
            progress.advance()
    runtime = time.monotonic() - start
    labels = [label for _, label in encoded[: len(predictions)]]
    metrics: dict[str, Any] = {}
    try:
        require_metric_packages()
        metrics.update({f"predict_{k}": v for k, v in score_corpus(predictions, labels).items()})
    except StudioError as err:  # after a long training run, keep the predictions rather than fail the run
        logger.warning("No BLEU/ROUGE scores: %s", err.message())
    batches = -(-len(predictions) // batch_size)
    metrics.update(predict_samples=len(predictions), predict_runtime=round(runtime, 4),
                   predict_samples_per_second=round(len(predictions) / runtime, 3) if runtime > 0 else 0.0,
                   predict_steps_per_second=round(batches / runtime, 3) if runtime > 0 else 0.0)
    write_results(run_dir, "predict", metrics, combined=False)
    logger.info("Predictions: %s", ", ".join(f"{k} = {v}" for k, v in metrics.items()))
    return metrics


def run_predict(config: RunConfig, run_dir: Path, abort: Any = None) -> dict[str, Any]:
    """Load the config's model (base + adapter) and predict its eval rows into the run folder."""
    from engine.errors import ConfigError
    from engine.eval.benchmark import place_model
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.trainer_setup import compute_dtype

    examples = prediction_examples(config)
    if not examples:
        raise ConfigError("predict_no_data")
    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    model = place_model(load_model(tokenizer, config.model, config.finetuning, is_trainable=False,
                                   compute_dtype=compute_dtype(config)), config)
    logger.info("Predicting %d rows in batches of %d.", len(examples), config.training.per_device_eval_batch_size)
    return predict(model, tokenizer, template, examples, config, run_dir, abort=abort)


def predict_after_training(config: RunConfig, run_dir: Path, model: Any, tokenizer: Any, template: Any,
                           abort: Any = None) -> dict[str, Any]:
    """`do_predict: true` in a `train` run: predict the held-out rows with the run's model (main process only).

    A run that trained keeps only the training curve in its log (no progress lines) and predicts its eval rows.
    With `do_train: false` this is LLaMA-Factory's way to predict through `train`: the loaded model (and adapters)
    predicts eval_dataset (else every row of dataset), with progress lines. The metrics also go to all_results.json.
    """
    from engine.eval.benchmark import place_model
    from engine.train.trainer_setup import is_main_process

    if not is_main_process():
        return {}
    examples = prediction_examples(config, after_training=config.training.do_train)
    if not examples:
        logger.warning("do_predict: no eval rows (set eval_dataset or val_size); no predictions were made.")
        return {}
    if not config.training.do_train:
        model = place_model(model, config)
    metrics = predict(model, tokenizer, template, examples, config, run_dir, abort=abort,
                      log_progress=not config.training.do_train)
    merge_all_results(run_dir, metrics)
    return metrics
