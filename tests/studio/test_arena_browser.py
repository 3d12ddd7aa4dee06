"""The arena in Chromium: the tiny model against a LoRA run trained on it here; the same model twice is refused, both
answers stream in side by side, a blind vote is saved and revealed, and the summary is still there after a reload."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.studio import test_language_pages as pages
from tests.studio.conftest import ROOT, shot
from tests.studio.test_browser import open_studio, pick_language
from tests.studio.test_runner import tiny_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture()
def lora_run(studio_server: dict, tiny_model_dir: Path) -> Iterator[Path]:
    """A finished LoRA run of the tiny model in the studio's saves (removed afterwards: other tests count runs)."""
    home = studio_server["home"]
    run_dir = home / "saves" / "tiny" / "lora" / "arena_lora"
    config_path = home / "arena_lora.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(tiny_model_dir, max_steps=3, output_dir=str(run_dir))))
    env = {**os.environ, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "engine", "train", str(config_path)], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (run_dir / "adapter_model.safetensors").is_file()
    yield run_dir
    shutil.rmtree(run_dir.parent.parent)
    config_path.unlink()


def pick(page, picker: str, option: str) -> None:
    page.locator(f"#{picker} input").click()
    page.get_by_role("option", name=option).click()


def open_arena(page, url: str) -> None:
    open_studio(page, url)
    page.get_by_role("tab", name="Chat").click()
    page.get_by_role("tab", name="Arena (compare two models)").click()


def test_two_models_answer_side_by_side_and_a_blind_vote_survives_a_reload(page, studio_server, tiny_model_dir,
                                                                           lora_run: Path):
    from playwright.sync_api import expect

    votes = studio_server["home"] / "saves" / ".studio" / "arena" / "votes.jsonl"
    before = len(votes.read_text().splitlines()) if votes.exists() else 0
    open_arena(page, studio_server["url"])
    page.locator("#model_path input, #model_path textarea").first.fill(str(tiny_model_dir))
    page.locator("#model_path input, #model_path textarea").first.press("Tab")
    base = "Top bar model: tiny"  # the last folder of its path
    expect(page.locator("#arena_model_a input")).to_have_value(base)
    expect(page.locator("#arena_model_b input")).to_have_value("Trained run: tiny/lora/arena_lora")
    expect(page.locator("#arena_status")).to_contain_text("not loaded")
    shot(page, "arena-start")

    pick(page, "arena_model_b", base)  # the same model on both sides: refused, nothing else changes
    page.locator("#arena_load_button").click()
    expect(page.locator("#arena_status")).to_contain_text("are the same model", timeout=60_000)
    expect(page.locator("#arena_model_a input")).to_have_value(base)
    shot(page, "arena-same-model")

    pick(page, "arena_model_b", "Trained run: tiny/lora/arena_lora")
    expect(page.locator("#arena_blind input")).to_be_checked()
    page.locator("#arena_load_button").click()
    expect(page.locator("#arena_status")).to_contain_text("Both models are loaded", timeout=240_000)

    page.locator("#arena_input textarea").fill("Who are you?")
    page.locator("#arena_input textarea").press("Enter")
    for side in ("a", "b"):  # both conversations get the message and an answer
        page.locator(f"#arena_chatbot_{side} [data-testid=bot]").first.wait_for(timeout=120_000)
        expect(page.locator(f"#arena_chatbot_{side} [data-testid=user]")).to_contain_text("Who are you?")
    expect(page.locator("#arena_status")).to_contain_text("Both have answered", timeout=120_000)
    expect(page.locator("#arena_sides")).to_contain_text("hidden until you vote")
    expect(page.locator("#arena_input textarea")).to_have_value("")
    shot(page, "arena-both-answered")

    page.get_by_role("button", name="👈 A is better").click()
    expect(page.locator("#arena_status")).to_contain_text("Vote saved")
    sides = page.locator("#arena_sides")
    expect(sides).to_contain_text("Revealed")
    expect(sides).to_contain_text("tiny + arena_lora")  # the run: the base model plus its adapter
    expect(page.locator("#arena_summary")).to_contain_text("of 1 votes")
    shot(page, "arena-voted")

    lines = votes.read_text().splitlines()
    assert len(lines) == before + 1
    saved = json.loads(lines[-1])
    assert saved["vote"] == "a" and saved["blind"] is True
    assert sorted(saved["models"].values()) == sorted([str(tiny_model_dir), f"{tiny_model_dir} + {lora_run}"])
    assert [m["role"] for m in saved["conversation"]["a"]] == ["user", "assistant"]

    page.reload()
    open_arena(page, studio_server["url"])
    summary = page.locator("#arena_summary")
    expect(summary).to_contain_text("of 1 votes")
    expect(summary).to_contain_text("tiny + arena_lora")
    expect(page.locator("#arena_status")).to_contain_text("Both models are loaded")  # found again after the reload
    shot(page, "arena-after-reload")

    page.locator("#arena_unload_button").click()
    expect(page.locator("#arena_status")).to_contain_text("memory freed", timeout=60_000)


def test_the_arena_is_translated_and_unbroken_in_every_language(page, studio_server):
    open_studio(page, studio_server["url"])
    problems: dict[str, list[str]] = {}
    for lang, name in pages.LANG_NAMES.items():
        pick_language(page, name)
        pages.wait_for_language(page, lang)
        texts = yaml.safe_load((ROOT / "locales" / f"{lang}.yaml").read_text(encoding="utf-8"))
        page.get_by_role("tab", name=texts["tab.chat.label"]).click()
        page.get_by_role("tab", name=texts["chat.chat_arena_tab.label"]).click()
        page.locator("#arena_status").get_by_text(texts["arena.msg.not_loaded"].split("**")[0].strip()).wait_for()
        pages.settle(page)
        if lang != "en":
            visible = page.evaluate(pages.VISIBLE_TEXT_JS, pages.GRADIO_UPLOAD_BOX)["page"]
            # Model names are names: "tiny" is the test model's, in the summary when a vote was cast before.
            if english := pages.english_words(visible, pages.locale_vocabulary(lang), pages.ALLOWED | {"tiny"}):
                problems[f"{lang}: English words"] = sorted(english)
        kept_whole = pages.WORDS_KEPT_WHOLE
        selector = kept_whole if lang in pages.WRAP_BETWEEN_CHARACTERS else f"{kept_whole}, {pages.INFO_TEXTS}"
        if broken := page.evaluate(pages.BROKEN_WORDS_JS, [lang, selector]):
            problems[f"{lang}: words broken over two lines"] = broken
        shot(page, f"arena-{lang}")
    assert not problems, json.dumps(problems, ensure_ascii=False, indent=1)
