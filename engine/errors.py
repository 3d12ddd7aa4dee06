"""User-facing errors: a message key from the locales plus the values that fill it.

Every mistake a user can make (config, dataset, command line) raises a `StudioError`. The CLI prints
its message without a traceback; the studio shows the same message in the chosen language.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from engine.paths import resource_dir

# libyaml's safe loader reads a locale about 8x faster than the pure-Python one (the studio reads one at start).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Phrase(str):
    """A message parameter that is itself a locale key (`phrase.<name>`), translated with the message."""

    def localized(self, lang: str) -> str:
        """The phrase in `lang`."""
        return format_message(f"phrase.{self}", lang)


class Setting(Phrase):
    """A config key named in a message. The command line shows the key as it is written in a config; the studio
    shows the setting's label in the user's language with the key as a hint, "Learning rate (learning_rate)"."""

    def localized(self, lang: str) -> str:
        """The key (the command line's wording)."""
        return str(self)

    def label(self, lang: str) -> str:
        """The studio's wording: the setting's label (`field.<key>.label`) with the key in parentheses."""
        text = load_locale(lang).get(f"field.{self}.label") or load_locale("en").get(f"field.{self}.label")
        return format_message("phrase.setting", lang, label=text, key=str(self)) if text else str(self)


class StudioError(Exception):
    """A mistake the user can fix; `key` names a message under `error.` in `locales/<lang>.yaml`."""

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key = key
        self.params = params
        super().__init__(self.message())

    def message(self, lang: str = "en") -> str:
        """The message in `lang` (English when the language or the key is missing)."""
        params = {k: v.localized(lang) if isinstance(v, Phrase) else v for k, v in self.params.items()}
        return format_message(f"error.{self.key}", lang, **params)


class ConfigError(StudioError):
    """A bad config file, key or value."""


class DataError(StudioError):
    """A bad dataset, registry entry or row."""


class ModelError(StudioError):
    """A model, tokenizer or adapter that cannot be loaded as asked."""


class RowsError(DataError):
    """Bad rows in one dataset; each row's problem is its own message key, so it translates too."""

    def __init__(self, key: str, problems: list[tuple[str, dict]], more: int, **params: Any) -> None:
        self.problems = problems
        self.more = more
        super().__init__(key, **params)

    def message(self, lang: str = "en") -> str:
        """The dataset-level message with up to MAX_REPORTED_ROWS row problems (and how many more) in `lang`."""
        lines = [format_message(f"error.{key}", lang, **params) for key, params in self.problems]
        if self.more:
            lines.append(format_message("error.rows_and_more", lang, count=self.more))
        return format_message(f"error.{self.key}", lang, details="\n".join(lines), **self.params)


_ERROR_CLASSES = {cls.__name__: cls for cls in (StudioError, ConfigError, DataError, ModelError)}


def error_to_json(err: StudioError) -> dict[str, Any]:
    """A StudioError as JSON, for a child process to hand to its parent (`error_from_json` rebuilds it there):
    phrases and setting names keep their kind, so the parent translates them into its page's language."""
    def plain(params: dict[str, Any]) -> dict[str, Any]:
        return {k: {"setting": str(v)} if isinstance(v, Setting) else {"phrase": str(v)} if isinstance(v, Phrase)
                else v if v is None or isinstance(v, (str, int, float, bool)) else str(v) for k, v in params.items()}

    out: dict[str, Any] = {"class": type(err).__name__, "key": err.key, "params": plain(err.params)}
    if isinstance(err, RowsError):
        out.update(problems=[[key, plain(params)] for key, params in err.problems], more=err.more)
    return out


def error_from_json(data: dict[str, Any]) -> StudioError:
    """The StudioError that `error_to_json` wrote (a plain StudioError for a class it does not know)."""
    def params_of(values: dict[str, Any]) -> dict[str, Any]:
        return {k: Setting(v["setting"]) if isinstance(v, dict) and set(v) == {"setting"}
                else Phrase(v["phrase"]) if isinstance(v, dict) and set(v) == {"phrase"} else v
                for k, v in (values or {}).items()}

    key = str(data.get("key") or "check_failed")
    if data.get("class") == "RowsError":
        problems = [(problem, params_of(params)) for problem, params in data.get("problems") or []]
        return RowsError(key, problems, int(data.get("more") or 0), **params_of(data.get("params")))
    return _ERROR_CLASSES.get(str(data.get("class")), StudioError)(key, **params_of(data.get("params")))


@cache
def load_locale(lang: str) -> dict[str, str]:
    """The flat key → text table of one UI language (empty when the language is unknown)."""
    path = resource_dir("locales") / f"{lang}.yaml"
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_YAML_LOADER) or {}


def format_message(key: str, lang: str = "en", /, **params: Any) -> str:
    """Look up `key` in `lang` (falling back to English) and fill its `{placeholders}`."""
    text = load_locale(lang).get(key) or load_locale("en").get(key)
    if text is None:
        detail = ", ".join(f"{k}={v}" for k, v in params.items())
        return f"{key}: {detail}" if detail else key
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text
