"""User-controlled text is escaped wherever a handler turns it into Markdown, HTML or a toast."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from engine.data.converter import RowsError
from engine.errors import DataError, Phrase, StudioError
from engine.paths import resource_dir
from studio.markup import escape_markdown, html_error, html_text, md, md_error

XSS = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"


def assert_inert(text: str, value: str = XSS) -> None:
    """No tag of `value` survives, and its text is there escaped."""
    assert "<img" not in text and "<script" not in text, text
    assert "&lt;img" in text or "&lt;script" in text, text


def test_escaping_keeps_text_literal() -> None:
    assert escape_markdown(XSS) == r'&lt;img src=x onerror="window.\_\_xss=1"&gt;'
    assert escape_markdown("a*b* [x](y) `c` ~~d~~ & my_run") == r"a\*b\* \[x\](y) \`c\` \~\~d\~\~ &amp; my\_run"
    assert_inert(md("data.registered", "en", name=XSS))
    assert "&quot;" in html_text("data.registered", "en", name=XSS)
    # The locale's own <placeholder> words are shown, not swallowed as unknown tags; numbers keep their formats.
    assert "&lt;benchmark&gt;" in md("error.eval_task_format", "en", task="x", splits="test")
    assert "1.2346" in md("monitor.results", "en", loss=f"{1.23456:.4f}", runtime="0:01:00")


def test_errors_escape_their_values_and_keep_phrases() -> None:
    err = DataError("dataset_name_invalid", name=XSS)
    assert_inert(md_error(err, "en"))
    assert_inert(html_error(err, "de"))
    assert err.params["name"] == XSS  # the error itself is untouched
    rows = RowsError("dataset_bad_rows", [("row_missing_column", {"row": SCRIPT, "column": "c", "field": "f", "present": "p"})], 0,
                     name=XSS, file="f.json", count=1)
    text = md_error(rows, "en")
    assert_inert(text) and "&lt;script" in text
    phrase = StudioError("demo_model_not_allowed", model=Phrase("demo"), allowed=XSS)
    assert_inert(md_error(phrase, "en"))


def test_locale_texts_hold_no_html_of_their_own() -> None:
    """Escaping a message's template is safe only while the texts hold Markdown, never HTML tags."""
    tag = re.compile(r"<\s*/?\s*(a|b|i|u|p|br|img|div|span|code|pre|em|strong|script|style|details|summary)\b", re.I)
    for path in sorted(resource_dir("locales").glob("*.yaml")):
        texts = yaml.safe_load(path.read_text(encoding="utf-8"))
        bad = [key for key, text in texts.items() if tag.search(str(text))]
        assert not bad, (path.name, bad)


def test_upload_handlers_escape_file_column_and_dataset_names(tmp_path: Path, studio_home: Path) -> None:
    from studio.tabs import train_data

    data = tmp_path / "data"
    named = tmp_path / f"{XSS.replace('/', '_')}.xml"  # a file name the browser sent
    named.write_text("<rows/>", encoding="utf-8")
    assert_inert(train_data.on_file(str(named), "alpaca", "en")[-1])
    upload = tmp_path / "cols.jsonl"
    upload.write_text(json.dumps({XSS: "hi", "output": SCRIPT}) + "\n", encoding="utf-8")
    assert_inert(train_data.on_file(str(upload), "alpaca", "en")[-1])
    message, _ = train_data.register(str(upload), XSS, "alpaca", False, str(data), "en", *[""] * len(train_data.MAPPABLE))
    assert "❌" in message
    assert_inert(message)


def test_monitor_status_escapes_the_cause_from_the_run_folder() -> None:
    from studio.monitor import RunView, status_markdown

    view = RunView(state="failed", message_key="monitor.failed", message_params={"error": XSS + SCRIPT})
    text = status_markdown(view)
    assert_inert(text)
    assert "&lt;script" in text


@pytest.mark.parametrize("name", ["runs_table", "eval_results", "eval_predictions", "export_parity_table"])
def test_tables_show_cells_as_plain_text(name: str) -> None:
    """A Dataframe renders "markdown"/"html" cells as markup: run names, predictions and prompts must stay text."""
    from studio.app import create_app

    component = create_app("en").studio_context[name]
    assert component.datatype == "str" or set(component.datatype) <= {"str", "number", "bool", "date"}
