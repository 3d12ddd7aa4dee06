"""Score a model on a multiple-choice benchmark: k-shot prompts, the next token's logits for A-D, accuracy.

Each question is a chat: the k solved dev examples as earlier turns, then the question, rendered with the run's
template up to the assistant's reply. The answer is the letter whose token the model ranks highest next. Letters
can be tokens of their own ("A") or carry a leading space (" A", "▁A"); a letter's score is the log-sum-exp of
the logits of every token that is that letter, so the model is not penalised for preferring either form.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError, ModelError
from engine.eval.tasks import CHOICES, Question, Subject, Task

logger = logging.getLogger(__name__)

# The instruction opening each prompt and the cue after the options, per prompt language (MMLU's and C-Eval's).
PROMPTS = {
    "en": ("The following are multiple choice questions (with answers) about {subject}.\n\n", "\nAnswer:"),
    "zh": ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n", "\n答案："),
}


@dataclass
class Item:
    """One encoded question: its subject, prompt ids and correct letter."""

    subject: str
    ids: list[int]
    answer: str


def format_question(question: Question, lang: str) -> str:
    """The question, its four options on lines `A. ...`, and the answer cue."""
    options = "".join(f"\n{letter}. {text}" for letter, text in zip(CHOICES, question.choices, strict=True))
    return f"{question.question}{options}{PROMPTS[lang][1]}"


def build_messages(subject: Subject, question: Question, shots: list[Question], lang: str) -> list[dict[str, str]]:
    """The k-shot chat: solved examples as earlier turns, the instruction before the first question."""
    messages: list[dict[str, str]] = []
    for shot in shots:
        messages += [{"role": "user", "content": format_question(shot, lang)},
                     {"role": "assistant", "content": shot.answer}]
    messages.append({"role": "user", "content": format_question(question, lang)})
    messages[0]["content"] = PROMPTS[lang][0].format(subject=subject.name) + messages[0]["content"]
    return messages


def encode_question(template: Any, tokenizer: Any, subject: Subject, question: Question, *, lang: str,
                    cutoff_len: int) -> list[int]:
    """Prompt ids with as many shots as fit in `cutoff_len` (a question too long alone keeps its head and tail)."""
    from engine.templates import render_prompt_ids

    for count in range(len(subject.dev), -1, -1):
        ids = render_prompt_ids(template, tokenizer, build_messages(subject, question, subject.dev[:count], lang))
        if len(ids) <= cutoff_len:
            return ids
    head = cutoff_len // 2
    return ids[:head] + ids[len(ids) - (cutoff_len - head):]


def choice_token_ids(tokenizer: Any) -> list[list[int]]:
    """Per letter A-D, the ids of the tokens that are that letter alone ("A", " A", "▁A", ...)."""
    result = []
    for letter in CHOICES:
        ids = set()
        for variant in (letter, f" {letter}"):
            encoded = tokenizer.encode(variant, add_special_tokens=False)
            if encoded and tokenizer.decode(encoded[-1:]).strip() == letter:
                ids.add(encoded[-1])
        if not ids:
            raise ModelError("benchmark_letter_tokens", letter=letter)
        result.append(sorted(ids))
    return result


def encode_task(task: Task, template: Any, tokenizer: Any, *, lang: str, cutoff_len: int) -> list[Item]:
    """Every question of the task as prompt ids, longest first (so a batch that does not fit fails early)."""
    items = [Item(subject.key, encode_question(template, tokenizer, subject, question, lang=lang,
                                               cutoff_len=cutoff_len), question.answer)
             for subject in task.subjects for question in subject.questions]
    return sorted(items, key=lambda item: -len(item.ids))


def predict_letters(model: Any, batch: list[list[int]], choice_ids: list[list[int]], pad_id: int) -> list[str]:
    """The letter each prompt's next token most likely is (left padding, only the last position's logits)."""
    import torch

    width = max(len(ids) for ids in batch)
    device = next(model.parameters()).device
    input_ids = torch.tensor([[pad_id] * (width - len(ids)) + ids for ids in batch], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
    kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
    accepted = inspect.signature(model.get_base_model().forward if hasattr(model, "get_base_model")
                                 else model.forward).parameters
    if "position_ids" in accepted:
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if "logits_to_keep" in accepted:  # the full logits of a long batch would take gigabytes for nothing
        kwargs["logits_to_keep"] = 1
    with torch.inference_mode():
        last = model(**kwargs).logits[:, -1, :].float()
    scores = torch.stack([torch.logsumexp(last[:, ids], dim=-1) for ids in choice_ids], dim=-1)
    return [CHOICES[i] for i in scores.argmax(dim=-1).tolist()]


def compared_models(config: RunConfig) -> list[tuple[str, Any]]:
    """(label, ModelArguments) of each model to score: the compared one first, then the config's own."""
    model = config.model
    own = Path(model.adapter_name_or_path.split(",")[-1].strip().rstrip("/")).name if model.adapter_name_or_path \
        else Path(model.model_name_or_path.rstrip("/")).name
    other = config.evaluation.compare_with
    if not other:
        return [(own, model)]
    if other == "base":
        if not model.adapter_name_or_path:
            raise ConfigError("compare_base_without_adapter")
        label, args = "base", replace(model, adapter_name_or_path=None)
    else:
        label, args = Path(other.rstrip("/")).name, replace(model, adapter_name_or_path=other)
    return [(label, args), (own if own != label else f"{own} (config)", model)]


def score_model(model: Any, items: list[Item], choice_ids: list[list[int]], pad_id: int, batch_size: int, *,
                abort: Any, on_batch: Any) -> dict[str, list[int]]:
    """subject → [correct, scored], batch by batch; stops early (partial counts) when an abort is requested."""
    counts: dict[str, list[int]] = {}
    for start in range(0, len(items), batch_size):
        if abort is not None and abort.requested:
            break
        batch = items[start:start + batch_size]
        for item, letter in zip(batch, predict_letters(model, [i.ids for i in batch], choice_ids, pad_id),
                                strict=True):
            entry = counts.setdefault(item.subject, [0, 0])
            entry[0] += int(letter == item.answer)
            entry[1] += 1
        on_batch()
    return counts


def run_benchmark(config: RunConfig, run_dir: Path, abort: Any = None) -> dict[str, Any]:
    """Score the config's model (and `compare_with`) on `task`; write results.json and results.log."""
    import gc

    from engine.eval.progress import ProgressLog
    from engine.eval.report import write_results
    from engine.eval.tasks import load_task
    from engine.model.chat_template import load_template
    from engine.model.demo import resolve_model_path
    from engine.model.loader import load_model, load_tokenizer
    from engine.train.trainer_setup import compute_dtype

    ev = config.evaluation
    task = load_task(ev.task or "", ev.task_dir, n_shot=ev.n_shot, download_mode=ev.download_mode)
    models = compared_models(config)
    tokenizer = load_tokenizer(config.model)
    template = load_template(config.model.template, resolve_model_path(config.model.model_name_or_path), tokenizer, config.data.tool_format)
    config.model.template = template.name
    items = encode_task(task, template, tokenizer, lang=ev.lang, cutoff_len=config.data.cutoff_len)
    choice_ids = choice_token_ids(tokenizer)
    batch_size = ev.batch_size or config.training.per_device_eval_batch_size
    batches = -(-len(items) // batch_size)
    logger.info("%s: %d subjects, %d questions, %d-shot, %d batches per model, from %s.", task.task,
                len(task.subjects), len(items), ev.n_shot, batches, task.source)
    progress = ProgressLog(run_dir, batches * len(models), stage="eval")
    counts: dict[str, dict[str, list[int]]] = {}
    for label, model_args in models:
        model = place_model(load_model(tokenizer, model_args, config.finetuning, is_trainable=False,
                                       compute_dtype=compute_dtype(config)), config)
        counts[label] = score_model(model, items, choice_ids, tokenizer.pad_token_id, batch_size, abort=abort,
                                    on_batch=progress.advance)
        del model
        gc.collect()
        if abort is not None and abort.requested:
            break
    return write_results(run_dir, task, config, counts, complete=not (abort is not None and abort.requested))


def place_model(model: Any, config: RunConfig) -> Any:
    """Move the model to the GPU when there is one (a quantized model was placed by its device map already)."""
    import torch

    if torch.cuda.is_available() and not config.training.use_cpu and not getattr(model, "hf_device_map", None):
        model = model.to("cuda")
    return model
