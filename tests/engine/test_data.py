"""The dataset registry, file reading, conversion to canonical examples, sampling, mixing and splitting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.data import (
    DatasetAttr,
    RowsError,
    convert_rows,
    dataset_kind,
    example_text,
    fill_placeholders,
    get_dataset_attrs,
    load_examples,
    load_hub_rows,
    load_registry,
    read_rows,
    split_examples,
)
from engine.data import loader as loader_module
from engine.errors import DataError, load_locale
from engine.paths import resource_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "data"
CANONICAL_KEYS = {
    "messages",
    "system",
    "tools",
    "chosen",
    "rejected",
    "kto_tag",
    "images",
    "videos",
    "audios",
    "source",
}


def load(name: str, **kwargs) -> list[dict]:
    """Examples of fixture datasets."""
    return load_examples(name, FIXTURES, **kwargs)


def raises(key: str, fn, *args, **kwargs) -> DataError:
    """Call fn, expect DataError `key`, and check its message has every placeholder filled."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.key == key, str(err)
    assert not re.search(r"\{[a-z_]+\}", str(err)), f"unfilled placeholder in: {err}"
    return err


def write_registry(folder: Path, entries: dict | str, files: dict[str, str] | None = None) -> Path:
    """A dataset folder in tmp with a registry (a dict, or raw text) and small files."""
    folder.mkdir(parents=True, exist_ok=True)
    text = entries if isinstance(entries, str) else json.dumps(entries)
    (folder / "dataset_info.json").write_text(text, encoding="utf-8")
    for name, content in (files or {}).items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


def roles(example: dict) -> list[str]:
    return [m["role"] for m in example["messages"]]


# --- formats and column mappings ---


def test_alpaca_with_history_and_system() -> None:
    examples = load("alpaca_full")
    assert len(examples) == 3
    assert all(set(e) == CANONICAL_KEYS for e in examples)
    first, second, third = examples
    assert first["messages"] == [
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I am {{name}}, made by {{author}}."},
    ]
    assert first["system"] is None and first["tools"] is None and first["images"] == []
    assert second["messages"] == [
        {"role": "user", "content": "Translate to English: merci"},
        {"role": "assistant", "content": "thank you"},
        {"role": "user", "content": "Translate to English\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]
    assert second["system"] == "You are a translator."
    assert second["source"] == "alpaca_full:1"
    assert third["system"] is None  # an empty system column means no system prompt
    assert third["messages"][0]["content"] == "Add the numbers\n2 and 3"


def test_alpaca_custom_columns_from_jsonl() -> None:
    examples = load("alpaca_custom")
    assert [e["messages"][-1]["content"] for e in examples] == ["Paris.", "4"]
    assert examples[0]["messages"][0] == {"role": "user", "content": "What is the capital of France?"}


def test_sharegpt_with_custom_tags_and_tools() -> None:
    first, second = load("sharegpt_tags")
    assert first["system"] == "Answer briefly."
    assert roles(first) == ["user", "function", "observation", "assistant"]
    assert json.loads(first["messages"][1]["content"])["name"] == "get_weather"
    assert json.loads(first["tools"])[0]["name"] == "get_weather"
    assert second["tools"] is None and second["system"] is None
    assert all(m["role"] != "system" for e in (first, second) for m in e["messages"])


def test_openai_tool_calls_become_function_turns() -> None:
    first, second = load("openai_tools")
    assert first["system"] == "You can call tools."
    assert roles(first) == ["user", "function", "observation", "assistant"]
    calls = json.loads(first["messages"][1]["content"])
    assert calls == [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Rome"}},
    ]
    assert first["messages"][2]["content"] == "20\n25"  # parallel tool results answer one function turn
    tools = json.loads(first["tools"])
    assert isinstance(first["tools"], str) and tools[0]["function"]["name"] == "get_weather"
    assert second["messages"][0] == {"role": "user", "content": "Hello"}  # text parts are joined


def test_ranking_alpaca_and_sharegpt() -> None:
    alpaca = load("ranking_alpaca")
    assert alpaca[0]["messages"] == [{"role": "user", "content": "Write a greeting"}]
    assert (alpaca[0]["chosen"], alpaca[0]["rejected"]) == ("Hello, {{name}} here!", "go away")
    assert alpaca[1]["messages"][0]["content"] == "Sum\n1 + 1"
    sharegpt = load("ranking_sharegpt")
    assert sharegpt[0]["system"] == "Be kind."
    assert roles(sharegpt[0]) == ["user"]
    assert roles(sharegpt[1]) == ["user", "assistant", "user"]
    assert (sharegpt[1]["chosen"], sharegpt[1]["rejected"]) == ("8", "6")
    attrs = get_dataset_attrs("ranking_alpaca, kto, alpaca_full", FIXTURES)
    assert [dataset_kind(a) for a in attrs] == ["ranking", "kto", "sft"]


def test_kto_tag_becomes_bool() -> None:
    examples = load("kto")
    assert [e["kto_tag"] for e in examples] == [True, False]
    assert roles(examples[0]) == ["user", "assistant"]
    attr = DatasetAttr("k", "file", "k.csv", columns={"kto_tag": "label"})
    rows = [{"instruction": "q", "output": "a", "label": value} for value in ("true", "0", 1, "Yes")]
    assert [e["kto_tag"] for e in convert_rows(attr, rows)] == [True, False, True, True]
    err = raises("dataset_bad_rows", convert_rows, attr, [{"instruction": "q", "output": "a", "label": "maybe"}])
    assert err.problems[0][0] == "row_bad_kto_tag" and '"maybe"' in str(err)


def test_txt_for_pretraining() -> None:
    examples = load("pretrain_txt", require_response=False)
    assert [example_text(e) for e in examples] == ["The first line of text.", "The second line.", "Third line"]
    assert roles(examples[0]) == ["user"]
    # Pre-training data has no response: asking for one says which column is missing.
    err = raises("dataset_missing_column", load, "pretrain_txt")
    assert "'output'" in str(err) and "'text'" in str(err)


def test_csv_quotes_multiline_and_blank_lines() -> None:
    examples = load("alpaca_csv")
    assert [e["messages"][0]["content"] for e in examples] == ["Say hello", "Split, with comma\na\nb", "Last"]
    assert examples[2]["source"] == "alpaca_csv:2"


def test_parquet(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "instruction": ["Hi", "Again"],
            "input": ["", None],
            "output": ["Hello", "Yes"],
            "history": [[["Earlier", "Answer"]], []],
        }
    )
    folder = write_registry(tmp_path / "d", {"pq": {"file_name": "rows.parquet", "columns": {"history": "history"}}})
    frame.to_parquet(folder / "rows.parquet")
    first, second = load_examples("pq", folder)
    assert roles(first) == ["user", "assistant", "user", "assistant"]
    assert first["messages"][0]["content"] == "Earlier"
    assert second["messages"] == [{"role": "user", "content": "Again"}, {"role": "assistant", "content": "Yes"}]
    (folder / "rows.parquet").write_bytes(b"PAR1 not really parquet")
    err = raises("dataset_file_unreadable", load_examples, "pq", folder)
    assert "rows.parquet" in str(err)


def test_folder_of_files() -> None:
    examples = load("folder", require_response=False)
    assert [e["messages"][0]["content"] for e in examples] == ["A1", "A2", "B1", "B2"]
    assert roles(examples[3]) == ["user"]  # no response, allowed when not required
    err = raises("dataset_bad_rows", load, "folder")
    assert "folder_data/part2.jsonl:2" in str(err) and "row 3" in str(err)


def test_read_rows_gives_raw_rows() -> None:
    (attr,) = get_dataset_attrs("alpaca_custom", FIXTURES)
    rows = read_rows(attr, FIXTURES)
    assert rows == [
        {"question": "What is the capital of France?", "answer": "Paris."},
        {"question": "What is 2 + 2?", "answer": "4"},
    ]


def test_json_lines_inside_a_json_file(tmp_path: Path) -> None:
    lines = '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n'
    folder = write_registry(tmp_path / "d", {"jl": {"file_name": "rows.json"}}, {"rows.json": lines})
    assert [e["messages"][1]["content"] for e in load_examples("jl", folder)] == ["b", "d"]


# --- placeholders, sampling, mixing, splitting ---


def test_fill_placeholders() -> None:
    examples = load("alpaca_full", placeholders={"name": "Nova", "author": "Acme"})
    assert examples[0]["messages"][1]["content"] == "I am Nova, made by Acme."
    ranked = fill_placeholders(load("ranking_alpaca"), {"name": "Nova"})
    assert ranked[0]["chosen"] == "Hello, Nova here!"
    custom = [{"messages": [{"role": "user", "content": "{{ name }} {{other}}"}], "system": "by {{author}}"}]
    (filled,) = fill_placeholders(custom, {"name": "N", "author": "A"})
    assert filled["messages"][0]["content"] == "N {{other}}" and filled["system"] == "by A"
    assert custom[0]["system"] == "by {{author}}"  # the input is not changed


def test_max_samples_takes_the_first_rows_of_each_dataset() -> None:
    examples = load("alpaca_full,alpaca_custom", max_samples=2)
    assert [e["source"] for e in examples] == ["alpaca_full:0", "alpaca_full:1", "alpaca_custom:0", "alpaca_custom:1"]
    raises("max_samples_invalid", load, "alpaca_full", max_samples=0)


def test_num_samples_is_seeded_and_repeats_when_larger() -> None:
    sampled = load("sampled")
    assert len(sampled) == 2 and len({e["source"] for e in sampled}) == 2
    assert [e["source"] for e in load("sampled")] == [e["source"] for e in sampled]
    over = load("oversampled")
    assert len(over) == 7
    assert {e["source"] for e in over} == {"oversampled:0", "oversampled:1", "oversampled:2"}


def test_mix_strategies() -> None:
    names = ["alpaca_full", "alpaca_custom"]  # 3 and 2 rows
    concat = load(names)
    assert [e["source"] for e in concat][:4] == ["alpaca_full:0", "alpaca_full:1", "alpaca_full:2", "alpaca_custom:0"]
    under = [e["source"] for e in load(names, mix_strategy="interleave_under")]
    assert under == ["alpaca_full:0", "alpaca_custom:0", "alpaca_full:1", "alpaca_custom:1", "alpaca_full:2"]
    over = [e["source"] for e in load(names, mix_strategy="interleave_over")]
    assert over == ["alpaca_full:0", "alpaca_custom:0", "alpaca_full:1", "alpaca_custom:1", "alpaca_full:2"]
    over = [e["source"] for e in load(["alpaca_custom", "alpaca_full"], mix_strategy="interleave_over")]
    assert over == [
        "alpaca_custom:0",
        "alpaca_full:0",
        "alpaca_custom:1",
        "alpaca_full:1",
        "alpaca_custom:0",
        "alpaca_full:2",
    ]
    probs = {"mix_strategy": "interleave_over", "interleave_probs": [0.8, 0.2], "seed": 3}
    weighted = [e["source"] for e in load(names, **probs)]
    assert weighted == [e["source"] for e in load(names, **probs)]  # seeded
    assert {s.split(":")[0] for s in weighted} == set(names)
    assert {"alpaca_full:0", "alpaca_full:1", "alpaca_full:2", "alpaca_custom:0", "alpaca_custom:1"} <= set(weighted)
    only_first = load(names, mix_strategy="interleave_under", interleave_probs=[1, 0])
    assert [e["source"] for e in only_first] == ["alpaca_full:0", "alpaca_full:1", "alpaca_full:2"]
    raises("interleave_probs_invalid", load, names, mix_strategy="interleave_under", interleave_probs=[1.0])
    raises("interleave_probs_invalid", load, names, mix_strategy="interleave_over", interleave_probs=[0, 0])
    raises("mix_strategy_unknown", load, names, mix_strategy="shuffle")


def test_split_examples() -> None:
    examples = [{"messages": [], "source": f"x:{i}"} for i in range(10)]
    train, evaluation = split_examples(examples, 0.2, seed=1)
    assert (len(train), len(evaluation)) == (8, 2)
    assert {e["source"] for e in train} | {e["source"] for e in evaluation} == {e["source"] for e in examples}
    assert split_examples(examples, 0.2, seed=1) == (train, evaluation)
    assert [len(part) for part in split_examples(examples, 3, seed=1)] == [7, 3]
    assert [len(part) for part in split_examples(examples, 3.0, seed=1)] == [7, 3]
    assert [len(part) for part in split_examples(examples, 0.05, seed=1)] == [9, 1]  # rounds up
    assert split_examples(examples, 0, seed=1) == (examples, [])
    err = raises("val_size_too_large", split_examples, examples, 10, seed=1)
    assert "10 rows" in str(err)
    raises("val_size_too_large", split_examples, examples[:1], 0.5, seed=1)
    for bad in (-1, 2.5, "0.1", True):
        raises("val_size_invalid", split_examples, examples, bad, seed=1)


# --- the registry ---


def test_get_dataset_attrs() -> None:
    attrs = get_dataset_attrs(" alpaca_full , sharegpt_tags,", FIXTURES)
    assert [a.name for a in attrs] == ["alpaca_full", "sharegpt_tags"]
    alpaca, sharegpt = attrs
    assert (alpaca.load_from, alpaca.path_or_id, alpaca.formatting, alpaca.split) == (
        "file",
        "alpaca_full.json",
        "alpaca",
        "train",
    )
    assert alpaca.columns["prompt"] == "instruction" and alpaca.columns["history"] == "history"
    assert sharegpt.tags["user_tag"] == "me" and sharegpt.columns["messages"] == "dialog"
    (openai,) = get_dataset_attrs(["openai_tools"], FIXTURES)
    assert openai.columns["messages"] == "messages" and openai.tags["observation_tag"] == "tool"
    err = raises("dataset_not_registered", get_dataset_attrs, "alpaca_ful", FIXTURES)
    assert "alpaca_full" in str(err) and "dataset_info.json" in str(err)
    raises("dataset_none_given", get_dataset_attrs, " , ", FIXTURES)
    assert "alpaca_full" in load_registry(FIXTURES)


def test_hub_source_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("USE_MODELSCOPE_HUB", raising=False)
    hf, both = get_dataset_attrs("hub_hf,hub_both", FIXTURES)
    assert (hf.load_from, hf.path_or_id, hf.subset) == ("hf_hub", "llm-studio-tests/no-such-dataset", "default")
    assert both.load_from == "hf_hub"
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    (both,) = get_dataset_attrs("hub_both", FIXTURES)
    assert (both.load_from, both.path_or_id) == ("ms_hub", "llm-studio-tests/no-such-ms-dataset")


@pytest.mark.parametrize(
    ("registry", "key", "fragment"),
    [
        ('{"a": {"file_name": "x.json"},\n  "b": }', "dataset_registry_invalid_json", "line 2"),
        ("[1, 2]", "dataset_registry_not_object", "array"),
        ({"a": "x.json"}, "dataset_entry_not_object", "'a'"),
        ({"a": {"formatting": "alpaca"}}, "dataset_entry_no_source", "file_name"),
        ({"a": {"file_name": "x.json", "hf_hub_url": "o/x"}}, "dataset_entry_two_sources", "hf_hub_url"),
        ({"a": {"cloud_file_name": "http://host/x.json"}}, "dataset_entry_bad_value", "cloud_file_name"),
        ({"a": {"file_name": "x.json", "formating": "sharegpt"}}, "dataset_entry_unknown_key", "formating"),
        ({"a": {"file_name": "x.json", "formatting": "chatml"}}, "dataset_entry_bad_formatting", "chatml"),
        ({"a": {"file_name": "x.json", "columns": {"question": "q"}}}, "dataset_entry_bad_mapping", "question"),
        (
            {"a": {"file_name": "x.json", "formatting": "sharegpt", "columns": {"prompt": "q"}}},
            "dataset_entry_bad_mapping",
            "prompt",
        ),
        ({"a": {"file_name": "x.json", "columns": {"prompt": 3}}}, "dataset_entry_bad_value", "columns.prompt"),
        ({"a": {"file_name": "x.json", "tags": {"role_tag": "r"}}}, "dataset_entry_tags_alpaca", "sharegpt"),
        (
            {"a": {"file_name": "x.json", "formatting": "openai", "tags": {"speaker": "r"}}},
            "dataset_entry_bad_mapping",
            "speaker",
        ),
        ({"a": {"file_name": "x.json", "num_samples": 0}}, "dataset_entry_bad_value", "num_samples"),
        ({"a": {"file_name": "x.json", "ranking": "yes"}}, "dataset_entry_bad_value", "ranking"),
        ({"a": {"file_name": ""}}, "dataset_entry_bad_value", "file_name"),
    ],
)
def test_malformed_registry(tmp_path: Path, registry: dict | str, key: str, fragment: str) -> None:
    folder = write_registry(tmp_path / "d", registry)
    err = raises(key, get_dataset_attrs, "a", folder)  # an entry is checked when a run uses it
    assert fragment in str(err) and "dataset_info.json" in str(err)


def test_missing_registry(tmp_path: Path) -> None:
    err = raises("dataset_registry_missing", load_registry, tmp_path)
    assert str(tmp_path) in str(err)


# --- bad files ---


@pytest.mark.parametrize(
    ("name", "key", "fragments"),
    [
        ("bad_truncated", "dataset_json_truncated", ["bad/truncated.json", "line 3", "column 24"]),
        ("bad_syntax_json", "dataset_json_invalid", ["bad/syntax.json", "line 3", "column 23"]),
        ("bad_syntax_jsonl", "dataset_jsonl_invalid", ["bad/syntax.jsonl", "line 2", "column 22"]),
        ("bad_not_object", "dataset_jsonl_not_object", ["bad/not_object.jsonl", "line 3", "array"]),
        ("bad_latin1", "dataset_file_not_utf8", ["bad/latin1.json", "offset 21", "0xe9", "UTF-8"]),
        ("bad_empty", "dataset_file_empty", ["bad/empty.json"]),
        ("bad_xml", "dataset_file_unsupported", ["bad/data.xml", ".xml", ".jsonl", ".parquet"]),
        ("bad_ragged", "dataset_csv_ragged", ["bad/ragged.csv", "line 3", "3 fields", "has 2"]),
        ("bad_object", "dataset_json_not_array", ["bad/object.json", "object"]),
        ("missing_file", "dataset_file_missing", ["no_such_file.json", str(FIXTURES / "no_such_file.json")]),
        ("escape_dotdot", "dataset_path_outside", ["../outside.json", str(FIXTURES)]),
        ("escape_absolute", "dataset_path_outside", ["/etc/hostname"]),
    ],
)
def test_bad_files(name: str, key: str, fragments: list[str]) -> None:
    err = raises(key, load, name)
    for fragment in fragments:
        assert fragment in str(err)
    assert f"'{name}'" in str(err)


def test_json_array_item_not_object(tmp_path: Path) -> None:
    folder = write_registry(tmp_path / "d", {"x": {"file_name": "x.json"}}, {"x.json": '[{"instruction": "a"}, 5]'})
    err = raises("dataset_json_row_not_object", load_examples, "x", folder)
    assert "row 1" in str(err) and "x.json" in str(err)


def test_empty_folder(tmp_path: Path) -> None:
    folder = write_registry(tmp_path / "d", {"f": {"file_name": "parts"}})
    (folder / "parts").mkdir()
    raises("dataset_folder_empty", load_examples, "f", folder)


# --- bad rows ---


def test_bad_alpaca_rows_are_reported_together() -> None:
    err = raises("dataset_bad_rows", load, "bad_rows")
    assert isinstance(err, RowsError)
    assert [key for key, _ in err.problems] == [
        "row_wrong_type",
        "row_empty_prompt",
        "row_empty_response",
        "row_missing_column",
        "row_bad_history",
    ]
    text = str(err)
    assert "'bad_rows'" in text and "bad/rows.json" in text and "7 bad row(s)" in text
    for row in ("row 1:", "row 2:", "row 3:", "row 4:", "row 5:"):
        assert row in text
    assert "and 2 more" in text and "row 6" not in text
    assert "'instruction'" in text  # the missing column is named
    assert "must be a JSON string, but it is a JSON number" in text


def test_bad_chat_rows() -> None:
    err = raises("dataset_bad_rows", load, "bad_chat")
    assert [key for key, _ in err.problems] == [
        "row_bad_order",
        "row_bad_role",
        "row_system_not_first",
        "row_ends_on_prompt",
        "row_wrong_type",
    ]
    assert "and 1 more" in str(err) and "message 0" in str(err) and "'robot'" in str(err)
    assert "bad/chat.json" in str(err)


def _chat_attr(**kwargs) -> DatasetAttr:
    return DatasetAttr("chat", "file", "chat.json", formatting="sharegpt", **kwargs)


def _problem(attr: DatasetAttr, row: dict, require_response: bool = True) -> tuple[str, str]:
    """The problem key and message of a single bad row."""
    err = raises("dataset_bad_rows", convert_rows, attr, [row], require_response=require_response)
    assert err.problems[0][1]["row"] == "0" and "'chat.json'" in str(err)
    return err.problems[0][0], str(err)


def test_single_row_problems() -> None:
    human, gpt = {"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}
    assert _problem(_chat_attr(), {"conversations": []})[0] == "row_no_messages"
    assert _problem(_chat_attr(), {"conversations": [human, {"from": "gpt", "value": " "}]})[0] == "row_empty_message"
    assert _problem(_chat_attr(), {"conversations": [{"from": "human", "value": ""}, gpt]})[0] == "row_empty_message"
    assert _problem(_chat_attr(), {"conversations": [human, {"from": "gpt", "value": 5}]})[0] == "row_bad_content"
    assert _problem(_chat_attr(), {"conversations": ["hi"]})[0] == "row_bad_message"
    tools_row = {"conversations": [human, gpt], "tools": "{broken"}
    key, text = _problem(_chat_attr(columns={"tools": "tools"}), tools_row)
    assert key == "row_bad_tools" and "'tools'" in text
    ranking = _chat_attr(ranking=True)
    chosen = {"from": "gpt", "value": "a"}
    assert _problem(ranking, {"conversations": [human, gpt], "chosen": chosen, "rejected": chosen})[0] == (
        "row_ranking_ends_on_response"
    )
    assert _problem(ranking, {"conversations": [human], "chosen": chosen, "rejected": human})[0] == "row_bad_reply"
    good = {"conversations": [human], "chosen": chosen, "rejected": chosen}
    err = raises("dataset_bad_rows", convert_rows, ranking, [good, {"conversations": [human], "chosen": chosen}])
    assert err.problems[0][0] == "row_missing_column" and "row 1:" in str(err) and "'rejected'" in str(err)
    openai = DatasetAttr("chat", "file", "chat.json", formatting="openai")
    call = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}
    assert _problem(openai, {"messages": [{"role": "user", "content": "x"}, call]})[0] == "row_bad_tool_calls"
    # Without require_response, a conversation may end on the prompt (prediction data).
    (example,) = convert_rows(_chat_attr(), [{"conversations": [human, gpt, human]}], require_response=False)
    assert roles(example) == ["user", "assistant", "user"]


def test_alpaca_tools_and_media_columns() -> None:
    attr = DatasetAttr("a", "file", "a.json", columns={"tools": "tools", "images": "images"})
    rows = [
        {"instruction": "q", "output": "a", "tools": [{"name": "f"}], "images": "cat.png"},
        {"instruction": "q", "output": "a", "tools": '[{"name": "g"}]', "images": ["a.png", "b.png"]},
    ]
    first, second = convert_rows(attr, rows)
    assert json.loads(first["tools"]) == [{"name": "f"}] and first["images"] == ["cat.png"]
    assert second["tools"] == '[{"name": "g"}]' and second["images"] == ["a.png", "b.png"]
    err = raises(
        "dataset_bad_rows", convert_rows, attr, [{"instruction": "q", "output": "a", "tools": None, "images": 3}]
    )
    assert err.problems[0][0] == "row_wrong_type"


@pytest.mark.parametrize(
    ("name", "key", "fragments"),
    [
        ("wrong_formatting", "dataset_wrong_formatting", ['"formatting": "sharegpt"', "ranking_sharegpt.json"]),
        ("absent_mapping", "dataset_column_absent", ["'sys_prompt'", "alpaca_full.json", "'instruction'"]),
        ("ranking_without_columns", "dataset_ranking_columns", ["'chosen'", "alpaca_full.json"]),
    ],
)
def test_column_mapping_errors(name: str, key: str, fragments: list[str]) -> None:
    err = raises(key, load, name)
    for fragment in fragments:
        assert fragment in str(err)


def test_missing_default_column_suggests_a_mapping() -> None:
    attr = DatasetAttr("q", "file", "q.json")
    err = raises("dataset_missing_column", convert_rows, attr, [{"question": "a", "output": "b"}])
    assert '"columns": {"prompt": "question"}' in str(err) and "'q.json'" in str(err)


# --- the hub ---


def test_hub_offline_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from engine.data import get_dataset_attrs, load_hub_rows
        from engine.errors import DataError
        (attr,) = get_dataset_attrs("hub_hf", {str(FIXTURES)!r})
        try:
            load_hub_rows(attr)
        except DataError as err:
            print(err.key)
            print(err)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, cwd=REPO_ROOT
    )
    key, _, message = done.stdout.partition("\n")
    assert key == "hub_offline", done.stdout + done.stderr
    assert "'hub_hf'" in message and "llm-studio-tests/no-such-dataset" in message
    assert "HF_HUB_OFFLINE" in message and "file_name" in message


def test_modelscope_missing_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_MODELSCOPE_HUB", "1")
    monkeypatch.setitem(sys.modules, "modelscope", None)  # makes `import modelscope` fail
    (attr,) = get_dataset_attrs("hub_both", FIXTURES)
    err = raises("hub_package_missing", load_hub_rows, attr)
    assert 'pip install "llm-studio[modelscope]"' in str(err) and "'hub_both'" in str(err)


def test_hub_rows_are_converted_and_empty_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader_module, "load_hub_rows", lambda attr, token=None: [{"instruction": "q", "output": "a"}])
    (example,) = load("hub_hf")
    assert example["source"] == "hub_hf:0" and roles(example) == ["user", "assistant"]
    monkeypatch.setattr(loader_module, "load_hub_rows", lambda attr, token=None: [])
    err = raises("empty_dataset", load, "hub_hf")
    assert "hub_hf" in str(err)


# --- packaging contracts ---


def test_importing_and_previewing_needs_neither_torch_nor_datasets() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from engine.data import load_examples, load_registry
        load_registry({str(FIXTURES)!r})
        load_examples("alpaca_full,sharegpt_tags,alpaca_csv", {str(FIXTURES)!r})
        print(sorted(m for m in ("torch", "datasets", "transformers") if m in sys.modules))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_every_error_key_has_an_english_message() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "engine" / "data").glob("*.py"))
    pattern = r'(?:DataError|RowsError|_Problem)\(\s*"(\w+)"|"(dataset_json_\w+)"|"(rows_and_more)"'
    keys = {k for match in re.findall(pattern, source) for k in match if k}
    assert len(keys) > 40
    messages = load_locale("en")
    assert sorted(k for k in keys if f"error.{k}" not in messages) == []


# --- the shipped demo data ---


def _shipped_entries() -> list[str]:
    path = resource_dir("data") / "dataset_info.json"
    if not path.is_file():
        return []
    return [name for name, entry in json.loads(path.read_text(encoding="utf-8")).items() if "file_name" in entry]


@pytest.mark.parametrize("name", _shipped_entries() or [pytest.param("none", marks=pytest.mark.skip("no data/"))])
def test_shipped_datasets_load(name: str) -> None:
    data_dir = resource_dir("data")
    (attr,) = get_dataset_attrs(name, data_dir)
    pretraining = attr.formatting == "alpaca" and attr.columns.get("prompt") == "text"
    examples = load_examples(
        name, data_dir, require_response=not pretraining, placeholders={"name": "Nova", "author": "Acme"}
    )
    assert examples and all(set(e) == CANONICAL_KEYS for e in examples)
    assert not any("{{name}}" in m["content"] for e in examples for m in e["messages"])
    assert all(example_text(e) for e in examples)
