"""Every language file in locales/ is one of the studio's languages, and has exactly English's keys and the same
{placeholders} in each text; the picker and the browser's language offer only languages whose file is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from studio.i18n import LANGUAGES, RTL_LANGUAGES, available_languages, browser_language

LOCALES = Path(__file__).resolve().parent.parent / "locales"
LANGS = sorted(path.stem for path in LOCALES.glob("*.yaml"))
PLACEHOLDER = re.compile(r"(?<!\{)\{([a-zA-Z_][a-zA-Z0-9_]*)\}(?!\})")
# In a right-to-left language a value (a path, a model name) is set between U+2068 and U+2069, so that its Latin
# letters and slashes keep their order inside the sentence.
NOT_ISOLATED = re.compile(r"(?<![{\u2068])\{[a-zA-Z_][a-zA-Z0-9_]*\}(?![}\u2069])")


def load(lang: str) -> dict[str, str]:
    return yaml.safe_load((LOCALES / f"{lang}.yaml").read_text(encoding="utf-8"))


def test_every_language_has_its_file():
    assert set(LANGS) == set(LANGUAGES), (sorted(set(LANGUAGES) - set(LANGS)), sorted(set(LANGS) - set(LANGUAGES)))


def test_english_has_no_duplicate_keys():
    keys = [line.split(":", 1)[0] for line in (LOCALES / "en.yaml").read_text(encoding="utf-8").splitlines()
            if line and not line.startswith(("#", " "))]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates


@pytest.mark.parametrize("lang", [lang for lang in LANGS if lang != "en"])
def test_language_is_complete(lang: str):
    english, other = load("en"), load(lang)
    assert set(other) == set(english), (sorted(set(english) - set(other))[:20], sorted(set(other) - set(english)))
    for key, text in english.items():
        assert set(PLACEHOLDER.findall(str(text))) == set(PLACEHOLDER.findall(str(other[key]))), key
        assert str(other[key]).strip(), key


def test_picker_offers_the_languages_with_a_file():
    assert list(available_languages()) == [code for code in LANGUAGES if code in LANGS]


@pytest.mark.parametrize(("header", "lang"), [
    ("ar-EG,ar;q=0.9,en;q=0.8", "ar"), ("hi-IN", "hi"), ("it-IT,it;q=0.9", "it"), ("tr-TR", "tr"),
    ("vi-VN,vi;q=0.9", "vi"), ("id-ID", "id"), ("in-ID", "id"), ("zh-HK", "zh-TW"), ("pt-PT", "pt-BR"),
])
def test_browser_language_maps_regional_tags(header: str, lang: str):
    assert browser_language(header) == (lang if lang in LANGS else "en")


@pytest.mark.parametrize("lang", [lang for lang in RTL_LANGUAGES if lang in LANGS])
def test_right_to_left_placeholders_are_isolated(lang: str):
    bare = {key: NOT_ISOLATED.findall(str(text)) for key, text in load(lang).items() if NOT_ISOLATED.search(str(text))}
    assert not bare, f"write each placeholder as \\u2068{{name}}\\u2069 in locales/{lang}.yaml: {bare}"
