"""Every tab in every language, in Chromium: no English left on a translated page, and no label, button, tab or
info text that breaks a line inside a word (Japanese compounds such as 学習率 split over two lines; Chinese info
texts are sentences, set as Chinese is, breaking between any two characters).

The locale test checks keys; this one checks what a person sees. A word counts as left-over English when it is
made of Latin letters and appears nowhere in that language's own locale texts (nor in a short allow-list of names
and units), so German's "Batch" or Chinese's "LoRA" are fine while an untranslated "Waiting" is not.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from tests.studio.conftest import ARTIFACTS, ROOT, shot
from tests.studio.test_browser import open_studio, pick_language

pytestmark = [pytest.mark.slow, pytest.mark.browser]

LANG_NAMES = {"en": "English", "zh": "简体中文", "zh-TW": "繁體中文", "ja": "日本語", "ko": "한국어", "ru": "Русский",
              "de": "Deutsch", "fr": "Français", "es": "Español", "pt-BR": "Português (Brasil)", "it": "Italiano",
              "tr": "Türkçe", "vi": "Tiếng Việt", "id": "Bahasa Indonesia", "ar": "العربية", "hi": "हिन्दी"}
TABS = ("train", "evaluate", "chat", "export")
# Names, units and products that stay as they are in every language (model, dataset and file names contain a
# digit, '_', '.', '-' or '/' and are never flagged).
ALLOWED = {"lora", "qlora", "gguf", "json", "jsonl", "csv", "yaml", "gptq", "dora", "pissa", "rslora", "galore", "badam",
           "deepspeed", "gpu", "cpu", "cuda", "nvidia", "bf16", "fp16", "fp32", "sft", "dpo", "kto", "ppo", "grpo",
           "rm", "orpo", "simpo", "neftune", "rope", "mmlu", "ceval", "cmmlu", "bleu", "rouge", "llama", "ollama",
           "safetensors", "hugging", "face", "huggingface", "modelscope", "vllm", "llm", "studio", "demo", "html",
           "api", "mb", "gb", "ms", "id", "ids", "sdpa", "pytorch", "flashattention", "unsloth", "liger", "identity",
           "alpaca", "sharegpt", "openai", "top", "beta", "gradio", "svg", "png", "zip", "bin", "ok", "lr"}
# Gradio's own words in its upload box ("Drop File Here - or - Click to Upload"): Gradio writes them in the browser's
# language, not the page's, and offers no setting for it, so the studio says the same under the box in the page's
# language (`data.upload_hint`). Allowed only inside the upload box.
GRADIO_UPLOAD_WORDS = {"drop", "file", "here", "or", "click", "to", "upload"}
GRADIO_UPLOAD_BOX = "#upload_file"
# A word of Latin letters, not part of a name with digits, '_', '.', '-' or '/' (French "l'encodage" is two words).
WORD = re.compile(r"(?<![\w./-])[A-Za-z]+(?![\w./-])")

# Visible text of the page: text nodes outside editable boxes, code, the log and chat messages (their content is
# the user's and the model's, and the log is the engine's own output), plus the labels of icon buttons; the text
# of Gradio's upload box apart. Screen-reader-only text (`.sr-only`, 1 pixel: Gradio's "Loading" announcement while
# an event runs) is not seen.
VISIBLE_TEXT_JS = """(uploadBox) => {
  const skip = 'textarea, input, select, script, style, .cm-editor, .sr-only, #log, #command, [data-testid=bot], ' +
    '[data-testid=user]';
  const out = {page: [], upload: []};
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || !node.textContent.trim() || el.closest(skip)) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    out[el.closest(uploadBox) ? 'upload' : 'page'].push(node.textContent.trim());
  }
  return out;
}"""

# Labels, info texts, buttons, tabs and accordion headers whose text wraps inside a word: each word (as the
# browser's own segmenter cuts the language into words) must lie on one line.
BROKEN_WORDS_JS = """([lang, selector]) => {
  const segmenter = new Intl.Segmenter(lang, {granularity: 'word'});
  const broken = [];
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || el.closest('.cm-editor, table')) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const seg of segmenter.segment(node.textContent)) {
        if (!seg.isWordLike || seg.segment.length < 2) continue;
        const range = document.createRange();
        range.setStart(node, seg.index);
        range.setEnd(node, seg.index + seg.segment.length);
        const tops = new Set([...range.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.top)));
        if (tops.size > 1) broken.push(`${seg.segment} in "${node.textContent.trim().slice(0, 60)}"`);
      }
    }
  }
  return [...new Set(broken)];
}"""

WORDS_KEPT_WHOLE = "[data-testid=block-info], button, [role=tab], label span"  # labels, buttons, tabs, headers
INFO_TEXTS = ".info-text"
# Chinese sentences wrap between any two characters, as Chinese text is set: there only labels, buttons, tabs and
# headers keep their words whole (Japanese info texts wrap at phrase boundaries, other languages at spaces).
WRAP_BETWEEN_CHARACTERS = {"zh", "zh-TW"}

# Gradio's own progress overlay ("In queue: 1 of 3", "processing", "Loading…") while events run: in the browser's
# language and gone once they are done, so the page is read after it is gone.
PAGE_SETTLED_JS = """() => ![...document.querySelectorAll('[data-testid=status-tracker]')].some(el => {
  const r = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && style.visibility !== 'hidden' && style.display !== 'none'
    && el.textContent.trim() !== '';
})"""

OPEN_GROUPS_JS = """(tab) => {
  const panel = document.querySelector('#tab_' + tab) || document;
  let opened = 0;
  for (const button of panel.querySelectorAll('button.label-wrap')) {
    const r = button.getBoundingClientRect();
    if (r.width === 0 || button.classList.contains('open')) continue;
    button.click();
    opened += 1;
  }
  return opened;
}"""


def locale_vocabulary(lang: str) -> set[str]:
    texts = yaml.safe_load((ROOT / "locales" / f"{lang}.yaml").read_text(encoding="utf-8"))
    return {word.lower() for text in texts.values() for word in re.findall(r"[A-Za-z]+", str(text))}


def english_words(texts: list[str], vocabulary: set[str], allowed: set[str] = ALLOWED) -> set[str]:
    """Latin-letter words that are neither in the language's locale texts nor in the allow-list."""
    found = set()
    for text in texts:
        for word in WORD.findall(text):
            plain = word.lower()
            if len(plain) >= 2 and plain not in vocabulary and plain not in allowed:
                found.add(word)
    return found


def write_finished_run(home) -> None:
    """A finished run as the engine leaves it, so the Train tab shows its results, charts and log on load."""
    run = home / "saves" / "demo" / "lora" / "zz_language_pages"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text("model_name_or_path: demo\nstage: sft\nfinetuning_type: lora\n"
                                     "dataset: identity\ntemplate: chatml\n", encoding="utf-8")
    records = [{"current_steps": step, "total_steps": 4, "percentage": step * 25.0, "elapsed_time": f"0:00:0{step}",
                "remaining_time": "0:00:00", "loss": 3.0 - 0.6 * step, "lr": 0.005 / step, "epoch": step / 4,
                "grad_norm": 1.2, "total_tokens": 500 * step, "throughput": 450.5} for step in range(1, 5)]
    (run / "trainer_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (run / "all_results.json").write_text(json.dumps({"train_loss": 2.1, "train_runtime": 3.9, "epoch": 1.0,
                                                      "train_samples_per_second": 13.97}), encoding="utf-8")
    log = ["[05:23:54] INFO engine.data.pipeline: Training on 54 sequences (2988 tokens).",
           "/x/site-packages/torch/utils/data.py:12: UserWarning: This DataLoader will create 2 worker processes.",
           "  warnings.warn(",
           *(f"{25 * s:3d}%|██▌       | {s}/4 [00:01<00:03,  1.09s/it]   {{'loss': '{3.0 - 0.6 * s:.4g}', 'grad_norm': '1.2', "
             f"'learning_rate': '0.005', 'epoch': '{s / 4}'}}" for s in range(1, 5)),
           "100%|██████████| 4/4 [00:03<00:00,  1.81it/s]   {'train_runtime': '3.9', 'train_samples_per_second': "
           "'13.97', 'train_loss': '2.1', 'epoch': '1'}",
           "***** train metrics *****", "  epoch                    =        1.0",
           "  train_loss               =      2.1"]
    (run / "running_log.txt").write_text("\n".join(log) + "\n", encoding="utf-8")
    (run / "status.json").write_text(json.dumps({"state": "finished", "task": "train", "exit_code": 0,
                                                 "started_at": "2026-01-01T00:00:00+00:00",
                                                 "ended_at": "2026-01-01T00:00:05+00:00", "error": None}),
                                     encoding="utf-8")


def wait_for_language(page, lang: str) -> None:
    label = yaml.safe_load((ROOT / "locales" / f"{lang}.yaml").read_text(encoding="utf-8"))["tab.export.label"]
    page.get_by_role("tab", name=label).wait_for()
    page.wait_for_timeout(500)  # the monitor's texts follow the relabel with their own event
    settle(page)


def settle(page) -> None:
    """Wait until no event of the page is running (their overlays gone); a page that never settles is read as is,
    and its overlay's words are then reported."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(PAGE_SETTLED_JS, timeout=15_000)
    except PlaywrightTimeout:
        pass


def test_every_tab_in_every_language_is_translated_and_unbroken(page, studio_server):
    write_finished_run(studio_server["home"])
    open_studio(page, studio_server["url"])
    problems: dict[str, list[str]] = {}
    for lang, name in LANG_NAMES.items():
        pick_language(page, name)
        wait_for_language(page, lang)
        vocabulary = locale_vocabulary(lang)
        for tab in TABS:
            tab_label = yaml.safe_load((ROOT / "locales" / f"{lang}.yaml").read_text(encoding="utf-8"))[
                f"tab.{tab}.label"]
            page.get_by_role("tab", name=tab_label).click()
            page.wait_for_timeout(300)
            if page.evaluate(OPEN_GROUPS_JS, tab):
                page.wait_for_timeout(500)
            settle(page)
            if lang != "en":
                texts = page.evaluate(VISIBLE_TEXT_JS, GRADIO_UPLOAD_BOX)
                english = (english_words(texts["page"], vocabulary)
                           | english_words(texts["upload"], vocabulary, ALLOWED | GRADIO_UPLOAD_WORDS))
                if english:
                    problems.setdefault(f"{lang}/{tab}: English words", []).extend(sorted(english))
            selector = WORDS_KEPT_WHOLE if lang in WRAP_BETWEEN_CHARACTERS else f"{WORDS_KEPT_WHOLE}, {INFO_TEXTS}"
            broken = page.evaluate(BROKEN_WORDS_JS, [lang, selector])
            if broken:
                problems.setdefault(f"{lang}/{tab}: words broken over two lines", []).extend(broken)
            shot(page, f"language-{lang}-{tab}")
    shutil.rmtree(studio_server["home"] / "saves" / "demo" / "lora" / "zz_language_pages")
    (ARTIFACTS / "language-pages-problems.json").write_text(json.dumps(problems, ensure_ascii=False, indent=1),
                                                            encoding="utf-8")
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)
