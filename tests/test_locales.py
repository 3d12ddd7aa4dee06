"""Every language has exactly English's keys and the same {placeholders} in each text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

LOCALES = Path(__file__).resolve().parent.parent / "locales"
LANGS = ["en", "zh", "zh-TW", "ja", "ko", "ru", "de", "fr", "es", "pt-BR"]
PLACEHOLDER = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)\}(?!\})")


def load(lang: str) -> dict[str, str]:
    return yaml.safe_load((LOCALES / f"{lang}.yaml").read_text(encoding="utf-8"))


def test_english_has_no_duplicate_keys():
    keys = [line.split(":", 1)[0] for line in (LOCALES / "en.yaml").read_text(encoding="utf-8").splitlines()
            if line and not line.startswith(("#", " "))]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates


@pytest.mark.parametrize("lang", LANGS[1:])
def test_language_is_complete(lang: str):
    english, other = load("en"), load(lang)
    assert set(other) == set(english), (sorted(set(english) - set(other))[:20], sorted(set(other) - set(english)))
    for key, text in english.items():
        assert set(PLACEHOLDER.findall(str(text))) == set(PLACEHOLDER.findall(str(other[key]))), key
        assert str(other[key]).strip(), key
