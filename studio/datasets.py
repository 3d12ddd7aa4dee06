"""The Train tab's dataset features as plain functions: list by stage, page through rows, and preview a row token
by token as the model will see it (with the loss mask), plus token-length statistics. Uploads live in
`studio.uploads` (re-exported here).

Torch-free: rows are read and converted by `engine.data`, rendered by `engine.templates`, and tokenized by
`studio.light_tokenizer` (the model folder's tokenizer.json through the `tokenizers` library).
"""

from __future__ import annotations

import dataclasses
import html
import math
from pathlib import Path
from typing import Any

from engine.data import (
    DatasetAttr,
    RowsError,
    convert_rows,
    dataset_kind,
    example_text,
    fill_placeholders,
    get_dataset_attrs,
    load_registry,
    read_rows,
)
from engine.data.files import describe_row
from engine.data.media import KINDS
from engine.errors import ConfigError, DataError, format_message
from engine.model.chat_template import load_template
from engine.templates import IGNORE_INDEX, render_conversation
from studio.capabilities import dataset_downloaded
from studio.light_tokenizer import LightTokenizer, load_light_tokenizer
from studio.uploads import detect_columns, register_upload, suggest_mapping

__all__ = ["STAGE_KINDS", "detect_columns", "format_length_stats", "length_stats", "list_datasets", "local_attr",
           "one_row_attr", "preview_rows", "register_upload", "render_preview", "suggest_mapping"]

STAGE_KINDS = {"pt": {"sft", "ranking", "kto"}, "sft": {"sft"}, "rm": {"ranking"}, "dpo": {"ranking"},
               "kto": {"kto"}, "ppo": {"sft"}, "grpo": {"sft"}}
_LEARNED_STYLE = "background:#dcfce7;color:#14532d;border-bottom:2px solid #16a34a;"
_MASKED_STYLE = "background:#f3f4f6;color:#9ca3af;border-bottom:2px solid transparent;"
_TOKEN_STYLE = "border-radius:3px;margin-right:1px;padding:0 1px;"


# --- listing and paging


def list_datasets(dataset_dir: str | Path | None, stage: str) -> list[str]:
    """Registered dataset names (registry order) whose kind suits `stage`, leaving out entries that cannot load (as
    LLaMA-Factory's stock registry has); a registry file that is not a JSON object raises its DataError."""
    if stage not in STAGE_KINDS:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGE_KINDS)}")
    registry = load_registry(dataset_dir)
    names = []
    for name in registry:
        try:
            (attr,) = get_dataset_attrs([name], dataset_dir)
        except DataError:  # a broken entry is refused when a run names it; it must not hide the others
            continue
        if dataset_kind(attr) in STAGE_KINDS[stage]:
            names.append(name)
    return names


def dataset_picker(dataset_dir: str | Path | None, stage: str, lang: str) -> list[tuple[str, str]]:
    """The dataset picker's entries for `stage`, as (label, name): a hub dataset not downloaded yet is marked, as
    the model picker marks models (one legend for both)."""
    names = list_datasets(dataset_dir, stage)
    attrs = {attr.name: attr for attr in get_dataset_attrs(names, dataset_dir)} if names else {}
    mark = format_message("top.model_name.download", lang)
    entries = []
    for name in names:
        remote = needs_download(attrs[name], dataset_dir)
        entries.append((f"{name} — {mark}" if remote else name, name))
    return entries


def needs_download(attr: DatasetAttr, dataset_dir: str | Path | None) -> bool:
    """Whether loading the entry fetches data over the network: a hub dataset not in the download cache, an
    OpenMind or cloud-storage entry (never cached here), or a `script_url` that is not a local folder."""
    if attr.load_from in ("hf_hub", "ms_hub"):
        return not dataset_downloaded(attr.path_or_id, "modelscope" if attr.load_from == "ms_hub" else "huggingface")
    if attr.load_from == "script":
        return not (Path(dataset_dir or "data") / attr.path_or_id).exists()
    return attr.load_from != "file"


def local_attr(dataset_dir: str | Path | None, name: str) -> DatasetAttr:
    """The registry entry of `name`, refusing hub datasets (the studio only reads files on this computer)."""
    (attr,) = get_dataset_attrs([name], dataset_dir)
    if attr.load_from != "file":
        raise DataError("preview_hub_dataset", name=name, hub_id=attr.path_or_id)
    return attr


def preview_rows(dataset_dir: str | Path | None, name: str, page: int = 0, page_size: int = 5) -> tuple[list[dict], int]:
    """The raw rows of page `page` (from 0; past the end: none) of a local dataset, and its total row count."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    rows = read_rows(local_attr(dataset_dir, name), dataset_dir)
    start = max(page, 0) * page_size
    return list(rows[start:start + page_size]), len(rows)


# --- token preview


def _load_renderer(model_path: str, template_name: str | None, plain: bool) -> tuple[LightTokenizer, Any]:
    """The preview tokenizer and the template training would use, the tokenizer adjusted as training adjusts it.

    Pre-training uses no template and leaves the tokenizer (its eos) as it is.
    """
    tokenizer = load_light_tokenizer(model_path)
    if plain:
        return tokenizer, None
    return tokenizer, load_template(template_name or None, tokenizer.name_or_path, tokenizer)


def _check_cutoff(cutoff_len: int) -> None:
    if isinstance(cutoff_len, bool) or not isinstance(cutoff_len, int) or cutoff_len < 1:
        raise ConfigError("invalid_cutoff_len", value=cutoff_len)


def one_row_attr(attr: DatasetAttr, row: dict) -> DatasetAttr:
    """`attr` for converting `row` alone: a media column the row lacks means no media of that kind there (the
    whole file's check refuses only a mapping that no row satisfies)."""
    return dataclasses.replace(attr, columns={key: column for key, column in attr.columns.items()
                                              if key not in KINDS or column in row})


def _convert_one(attr: DatasetAttr, rows: list[dict], index: int, plain: bool) -> dict:
    """The canonical example of one row; a bad row's message gives its index in the whole file."""
    try:
        (example,) = convert_rows(one_row_attr(attr, rows[index]), [rows[index]], require_response=not plain)
    except RowsError as err:
        problems = [(key, {**params, "row": describe_row(rows, index)}) for key, params in err.problems]
        raise RowsError(err.key, problems, err.more, **err.params) from None
    return example


def _sequences(example: dict, plain: bool) -> list[tuple[str | None, list[dict]]]:
    """(heading key, messages) to render: one conversation, or one per reply of a ranking example."""
    if plain:
        return [("datasets.preview.pretraining", [])]
    if example.get("chosen") is not None:
        return [(f"datasets.preview.{key}", [*example["messages"], {"role": "assistant", "content": example[key]}])
                for key in ("chosen", "rejected")]
    if example.get("kto_tag") is not None:
        key = "kto_desirable" if example["kto_tag"] else "kto_undesirable"
        return [(f"datasets.preview.{key}", example["messages"])]
    return [(None, example["messages"])]


def _encode(tokenizer: LightTokenizer, template: Any, example: dict, messages: list[dict], cutoff_len: int | None,
            options: dict) -> tuple[list[int], list[int]]:
    """input_ids and labels as training builds them (plain text when `messages` is empty: bos + text + eos)."""
    if not messages:
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        ids = (bos + tokenizer.encode(example_text(example), add_special_tokens=False) + eos)[:cutoff_len]
        return ids, list(ids)
    system = example.get("system") or options.get("default_system")
    return render_conversation(template, tokenizer, messages, system, example.get("tools"), cutoff_len=cutoff_len,
                               train_on_prompt=options.get("train_on_prompt", False),
                               mask_history=options.get("mask_history", False),
                               enable_thinking=options.get("enable_thinking", True))


def render_preview(dataset_dir: str | Path | None, name: str, model_path: str, template_name: str | None,
                   cutoff_len: int, index: int = 0, *, train_on_prompt: bool = False, mask_history: bool = False,
                   placeholders: dict[str, str] | None = None, stage: str = "sft", default_system: str | None = None,
                   enable_thinking: bool | None = True, lang: str = "en") -> str:
    """HTML of row `index` as the model sees it: every token, learned ones highlighted, masked ones grey.

    The template is `template_name`, else the model folder's recommendation, else the tokenizer's own, else
    `default` (as in training). `stage="pt"` shows the row as pre-training text (bos + text + eos, no template),
    other stages as a conversation, so a dataset the stage cannot train on fails here as it would in training.
    Texts are in `lang`.
    """
    _check_cutoff(cutoff_len)
    attr = local_attr(dataset_dir, name)
    rows = read_rows(attr, dataset_dir)
    if not 0 <= index < len(rows):
        raise DataError("preview_row_out_of_range", name=name, index=index, total=len(rows), last=len(rows) - 1)
    plain = stage == "pt"
    example = _convert_one(attr, rows, index, plain)
    if placeholders:
        (example,) = fill_placeholders([example], placeholders)
    tokenizer, template = _load_renderer(model_path, template_name, plain)
    options = {"train_on_prompt": train_on_prompt, "mask_history": mask_history, "default_system": default_system,
               "enable_thinking": enable_thinking}
    shown = template.name if template is not None else "—"
    parts = [_p(format_message("datasets.preview.summary", lang, index=index, total=len(rows), template=shown))]
    for heading, messages in _sequences(example, plain):
        full = len(_encode(tokenizer, template, example, messages, None, options)[0])
        ids, labels = _encode(tokenizer, template, example, messages, cutoff_len, options)
        parts.append(_section(tokenizer, ids, labels, full, cutoff_len, heading, lang))
    return ('<div class="token-preview" style="font-family:ui-monospace,SFMono-Regular,Menlo,monospace;'
            'font-size:13px;line-height:1.9;">' + _legend(lang) + "".join(parts) + "</div>")


def _p(text: str, style: str = "") -> str:
    return f'<p style="margin:4px 0;{style}">{html.escape(text)}</p>'


def _legend(lang: str) -> str:
    """The colour key: which style means learned and which means masked."""
    learned = format_message("datasets.preview.learned", lang)
    masked = format_message("datasets.preview.masked", lang)
    return (f'<div class="tok-legend" style="margin-bottom:6px;">'
            f'<span class="tok-learned" style="{_TOKEN_STYLE}{_LEARNED_STYLE}">{html.escape(learned)}</span> '
            f'<span class="tok-masked" style="{_TOKEN_STYLE}{_MASKED_STYLE}">{html.escape(masked)}</span>'
            f'{_p(format_message("datasets.preview.legend", lang), "font-size:12px;opacity:.8;")}</div>')


def _section(tokenizer: LightTokenizer, ids: list[int], labels: list[int], full: int, cutoff_len: int,
             heading: str | None, lang: str) -> str:
    """One rendered sequence: its heading, token counts, truncation note and the coloured tokens."""
    learned = sum(label != IGNORE_INDEX for label in labels)
    out = [_p(format_message(heading, lang), "font-weight:600;")] if heading else []
    out.append(_p(format_message("datasets.preview.counts", lang, tokens=len(ids), learned=learned)))
    if full > len(ids):
        out.append(_p(format_message("datasets.preview.truncated", lang, cutoff_len=cutoff_len, full=full,
                                     cut=full - len(ids)), "color:#b45309;"))
    else:
        out.append(_p(format_message("datasets.preview.fits", lang, cutoff_len=cutoff_len)))
    if not learned:
        out.append(_p(format_message("datasets.preview.nothing_learned", lang), "color:#b91c1c;"))
    spans = []
    for start, end, text in tokenizer.token_pieces(ids):
        is_learned = any(label != IGNORE_INDEX for label in labels[start:end])
        css, style = ("tok-learned", _LEARNED_STYLE) if is_learned else ("tok-masked", _MASKED_STYLE)
        title = "id " + " ".join(str(i) for i in ids[start:end])
        spans.append(f'<span class="{css}" title="{title}" style="{_TOKEN_STYLE}{style}">{_visible(text)}</span>')
    out.append('<div class="tok-text" style="white-space:pre-wrap;word-break:break-word;border:1px solid #e5e7eb;'
               'border-radius:6px;padding:8px;margin:4px 0 12px;background:#fff;">' + "".join(spans) + "</div>")
    return "".join(out)


def _visible(text: str) -> str:
    """Escaped token text with line breaks shown as ↵ (then broken), and an empty token shown as ∅."""
    if not text:
        return "∅"
    escaped = html.escape(text).replace("\r", "␍").replace("\t", "→\t")
    return escaped.replace("\n", '<span style="opacity:.6;">↵</span>\n')


# --- length statistics


def length_stats(dataset_dir: str | Path | None, name: str, model_path: str, template_name: str | None,
                 cutoff_len: int, *, max_rows: int = 2000, stage: str = "sft", train_on_prompt: bool = False,
                 mask_history: bool = False, default_system: str | None = None,
                 enable_thinking: bool | None = True) -> dict[str, Any]:
    """Token lengths of the rows before truncation (evenly sampled when there are more than `max_rows`; a ranking
    row counts with the longer of its two replies).

    Returns rows (counted), total_rows, mean, p50, p95, max, truncated (rows longer than cutoff_len), cutoff_len and
    histogram: a pandas DataFrame (bucket, count) in bucket order, for a gr.BarPlot (pass `sort=list(df.bucket)`).
    """
    import pandas as pd

    _check_cutoff(cutoff_len)
    attr = local_attr(dataset_dir, name)
    rows = read_rows(attr, dataset_dir)
    plain = stage == "pt"
    examples = convert_rows(attr, rows, require_response=not plain)
    if len(examples) > max_rows:
        examples = [examples[i * len(examples) // max_rows] for i in range(max_rows)]
    tokenizer, template = _load_renderer(model_path, template_name, plain)
    options = {"train_on_prompt": train_on_prompt, "mask_history": mask_history, "default_system": default_system,
               "enable_thinking": enable_thinking}
    lengths = sorted(
        max(len(_encode(tokenizer, template, example, messages, None, options)[0])
            for _, messages in _sequences(example, plain))
        for example in examples
    )
    count = len(lengths)
    stats: dict[str, Any] = {"rows": count, "total_rows": len(rows), "cutoff_len": cutoff_len,
                             "truncated": sum(length > cutoff_len for length in lengths)}
    if not count:
        return {**stats, "mean": 0.0, "p50": 0, "p95": 0, "max": 0,
                "histogram": pd.DataFrame({"bucket": [], "count": []})}
    stats.update(mean=round(sum(lengths) / count, 1), p50=_percentile(lengths, 50), p95=_percentile(lengths, 95),
                 max=lengths[-1])
    width = _bucket_width(lengths[-1])
    buckets = [length // width for length in lengths]
    labels = [f"{b * width}–{(b + 1) * width - 1}" for b in range(buckets[-1] + 1)]
    counts = [buckets.count(b) for b in range(len(labels))]
    stats["histogram"] = pd.DataFrame({"bucket": labels, "count": counts})
    return stats


def _percentile(ordered: list[int], percent: float) -> int:
    """The nearest-rank percentile of sorted values."""
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


def _bucket_width(longest: int, target: int = 12) -> int:
    """A round bucket width (1, 2, 5 × 10^k) giving about `target` buckets up to `longest`."""
    rough = max(longest / target, 1)
    power = 10 ** math.floor(math.log10(rough))
    return int(next(step * power for step in (1, 2, 5, 10) if step * power >= rough))


def format_length_stats(stats: dict[str, Any], lang: str = "en") -> str:
    """One sentence summing up `length_stats` for people."""
    return format_message("datasets.stats.summary", lang, **{k: v for k, v in stats.items() if k != "histogram"})
