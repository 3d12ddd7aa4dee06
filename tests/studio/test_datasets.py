"""The Train tab's dataset functions: listing by stage, paging, uploads, the token preview and length statistics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.data import load_examples, load_registry
from engine.errors import DataError, ModelError, StudioError, load_locale
from engine.paths import resource_dir
from studio.datasets import (
    STAGE_KINDS,
    detect_columns,
    format_length_stats,
    length_stats,
    list_datasets,
    preview_rows,
    register_upload,
    render_preview,
    suggest_mapping,
)
from studio.light_tokenizer import load_light_tokenizer

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = resource_dir("data")
IDENTITY = {"name": "Nova", "author": "Acme"}

MIXED_REGISTRY = {
    "chat": {"file_name": "chat.json"},
    "pairs": {"file_name": "pairs.json", "ranking": True},
    "labelled": {"file_name": "labelled.json", "columns": {"kto_tag": "label"}},
    "remote": {"hf_hub_url": "org/remote"},
}


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A dataset folder with an sft, a ranking, a kto and a hub entry."""
    folder = tmp_path / "data"
    write_json(folder / "chat.json", [{"instruction": f"Question {i} <b>?</b>", "output": f"Answer {i}"}
                                      for i in range(7)])
    write_json(folder / "pairs.json", [{"instruction": "Hi", "chosen": "Hello!", "rejected": "Go away."}])
    write_json(folder / "labelled.json", [{"instruction": "2+2?", "output": "4", "label": True}])
    write_json(folder / "dataset_info.json", MIXED_REGISTRY)
    return folder


class _Tokens(HTMLParser):
    """The (class, text) of every token span of a preview."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: list[list[str]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        css = dict(attrs).get("class", "")
        if tag == "span" and css in ("tok-learned", "tok-masked") and dict(attrs).get("title"):
            self.tokens.append([css, ""])
            self.depth = 1
        elif tag == "span" and self.depth:
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.tokens[-1][1] += data


def token_spans(page: str) -> list[tuple[str, str]]:
    parser = _Tokens()
    parser.feed(page)
    # The line-break mark is display only: "↵\n" stands for "\n".
    return [(css, text.replace("↵\n", "\n")) for css, text in parser.tokens]


# --- listing and paging


def test_list_datasets_on_the_shipped_registry() -> None:
    sft = list_datasets(SHIPPED, "sft")
    assert {"identity", "alpaca_en_demo", "multiturn_en_demo"} <= set(sft)
    assert list_datasets(SHIPPED, "pt") == list(load_registry(SHIPPED))  # pre-training takes every dataset
    assert list_datasets(SHIPPED, "dpo") == ["dpo_en_demo", "dpo_zh_demo"]
    assert list_datasets(SHIPPED, "kto") == ["kto_en_demo"]


def test_list_datasets_filters_by_kind(data_dir: Path) -> None:
    expected = {"pt": ["chat", "pairs", "labelled", "remote"], "sft": ["chat", "remote"], "rm": ["pairs"],
                "dpo": ["pairs"], "kto": ["labelled"], "ppo": ["chat", "remote"], "grpo": ["chat", "remote"]}
    assert {stage: list_datasets(data_dir, stage) for stage in STAGE_KINDS} == expected
    # A broken entry (LLaMA-Factory's stock registry has hub-only ones too) leaves the others listed.
    (data_dir / "dataset_info.json").write_text('{"chat": {"file_name": 3}, "ok": {"file_name": "chat.json"}}',
                                                encoding="utf-8")
    assert list_datasets(data_dir, "sft") == ["ok"]
    (data_dir / "dataset_info.json").write_text('["not", "a", "mapping"]', encoding="utf-8")
    with pytest.raises(DataError):
        list_datasets(data_dir, "sft")


def test_preview_pages(data_dir: Path) -> None:
    rows, total = preview_rows(data_dir, "chat", page=0, page_size=3)
    assert total == 7 and [r["output"] for r in rows] == ["Answer 0", "Answer 1", "Answer 2"]
    assert [r["output"] for r in preview_rows(data_dir, "chat", page=2, page_size=3)[0]] == ["Answer 6"]
    assert preview_rows(data_dir, "chat", page=5, page_size=3) == ([], 7)
    with pytest.raises(DataError) as err:
        preview_rows(data_dir, "remote")
    assert err.value.key == "preview_hub_dataset" and "org/remote" in str(err.value)


# --- uploads


def test_detect_columns_of_each_format(tmp_path: Path) -> None:
    import pandas as pd

    rows = [{"question": "q", "answer": "a"}, {"question": "q2", "answer": "a2", "system": "s"}]
    write_json(tmp_path / "a.json", rows)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text("question,answer\nq,a\n", encoding="utf-8")
    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "e.txt").write_text("some text\n", encoding="utf-8")
    assert detect_columns(tmp_path / "a.json") == ["question", "answer", "system"]
    assert detect_columns(tmp_path / "b.jsonl") == ["question", "answer", "system"]
    assert detect_columns(tmp_path / "c.csv") == ["question", "answer"]
    assert detect_columns(tmp_path / "d.parquet") == ["question", "answer", "system"]
    assert detect_columns(tmp_path / "e.txt") == ["text"]
    (tmp_path / "f.xml").write_text("<rows/>", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported file type '.xml'"):
        detect_columns(tmp_path / "f.xml")
    (tmp_path / "g.jsonl").write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        detect_columns(tmp_path / "g.jsonl")


def test_suggest_mapping() -> None:
    columns = ["Question", "input", "answer", "system", "label", "extra"]
    assert suggest_mapping(columns, "alpaca") == {"prompt": "Question", "query": "input", "response": "answer",
                                                  "system": "system", "kto_tag": "label"}
    assert suggest_mapping(["input", "output"], "alpaca") == {"prompt": "input", "response": "output"}
    assert suggest_mapping(["conversations", "tools", "chosen", "rejected"], "sharegpt") == {
        "messages": "conversations", "tools": "tools", "chosen": "chosen", "rejected": "rejected"}
    assert suggest_mapping(["messages"], "openai") == {"messages": "messages"}
    assert suggest_mapping(["whatever"], "alpaca") == {}


def test_register_upload_writes_the_entry_and_keeps_a_backup(data_dir: Path, tmp_path: Path) -> None:
    registry_file = data_dir / "dataset_info.json"
    before = registry_file.read_text(encoding="utf-8")
    src = tmp_path / "mine.jsonl"
    src.write_text('{"q": "Hi", "a": "Hello"}\n{"q": "Bye", "a": "See you"}\n', encoding="utf-8")
    entry = register_upload(src, data_dir, "my-data.v1", "alpaca", {"prompt": "q", "response": "a", "system": ""})
    assert entry == {"file_name": "uploads/my-data.v1.jsonl", "formatting": "alpaca",
                     "columns": {"prompt": "q", "response": "a"}}
    registry = json.loads(registry_file.read_text(encoding="utf-8"))
    assert list(registry) == [*MIXED_REGISTRY, "my-data.v1"] and registry["my-data.v1"] == entry
    assert (data_dir / "dataset_info.json.bak").read_text(encoding="utf-8") == before
    assert (data_dir / "uploads" / "my-data.v1.jsonl").read_bytes() == src.read_bytes()
    assert [e["messages"][1]["content"] for e in load_examples("my-data.v1", data_dir)] == ["Hello", "See you"]
    # A chat upload with its own tags; the backup now holds the previous version.
    chat = write_json(tmp_path / "chat.json", [{"dialog": [{"who": "u", "text": "Hi"}, {"who": "b", "text": "Yo"}]}])
    tags = {"role_tag": "who", "content_tag": "text", "user_tag": "u", "assistant_tag": "b"}
    register_upload(chat, data_dir, "talk", "sharegpt", {"messages": "dialog"}, tags=tags)
    assert list(load_registry(data_dir)) == [*MIXED_REGISTRY, "my-data.v1", "talk"]
    assert "talk" not in json.loads((data_dir / "dataset_info.json.bak").read_text(encoding="utf-8"))
    assert "my-data.v1" in json.loads((data_dir / "dataset_info.json.bak").read_text(encoding="utf-8"))


def test_register_upload_ranking_and_new_registry(tmp_path: Path) -> None:
    src = write_json(tmp_path / "p.json", [{"instruction": "Hi", "chosen": "Hello", "rejected": "No"}])
    entry = register_upload(src, tmp_path / "fresh", "prefs", "alpaca", {}, ranking=True)
    assert entry == {"file_name": "uploads/prefs.json", "formatting": "alpaca", "ranking": True}
    assert list_datasets(tmp_path / "fresh", "dpo") == ["prefs"]
    assert not (tmp_path / "fresh" / "dataset_info.json.bak").exists()


@pytest.mark.parametrize("name", ["", "a b", "../up", "x/y", ".hidden", "-dash", "ü", "n" * 101])
def test_register_upload_refuses_invalid_names(data_dir: Path, tmp_path: Path, name: str) -> None:
    src = write_json(tmp_path / "ok.json", [{"instruction": "q", "output": "a"}])
    with pytest.raises(DataError) as err:
        register_upload(src, data_dir, name, "alpaca", {})
    assert err.value.key == "dataset_name_invalid"
    assert not (data_dir / "uploads").exists()


def test_register_upload_refuses_a_taken_name(data_dir: Path, tmp_path: Path) -> None:
    src = write_json(tmp_path / "ok.json", [{"instruction": "q", "output": "a"}])
    before = (data_dir / "dataset_info.json").read_bytes()
    with pytest.raises(DataError) as err:
        register_upload(src, data_dir, "chat", "alpaca", {})
    assert err.value.key == "dataset_name_taken" and "'chat'" in str(err.value)
    assert (data_dir / "dataset_info.json").read_bytes() == before
    assert not (data_dir / "uploads" / "chat.json").exists()


def test_register_upload_with_bad_rows_registers_nothing(data_dir: Path, tmp_path: Path) -> None:
    src = write_json(tmp_path / "bad.json", [{"instruction": "q", "output": "a"}, {"instruction": "q2", "output": ""},
                                             {"instruction": "q3", "output": "c"}])
    before = (data_dir / "dataset_info.json").read_bytes()
    with pytest.raises(DataError) as err:
        register_upload(src, data_dir, "bad", "alpaca", {})
    assert err.value.key == "dataset_bad_rows" and "row 1" in str(err.value) and "empty" in str(err.value)
    assert (data_dir / "dataset_info.json").read_bytes() == before
    assert not (data_dir / "uploads" / "bad.json").exists() and not (data_dir / "dataset_info.json.bak").exists()
    # A mapping to a column the file lacks is refused the same way.
    good = write_json(tmp_path / "good.json", [{"instruction": "q", "output": "a"}])
    with pytest.raises(DataError) as err:
        register_upload(good, data_dir, "good", "alpaca", {"response": "answer"})
    assert err.value.key == "dataset_column_absent"
    assert not (data_dir / "uploads" / "good.json").exists()


def test_register_upload_refuses_unsupported_files_and_settings(data_dir: Path, tmp_path: Path) -> None:
    xml = tmp_path / "rows.xml"
    xml.write_text("<rows/>", encoding="utf-8")
    with pytest.raises(DataError) as err:
        register_upload(xml, data_dir, "xml", "alpaca", {})
    assert err.value.key == "dataset_file_unsupported" and ".jsonl" in str(err.value)
    src = write_json(tmp_path / "ok.json", [{"instruction": "q", "output": "a"}])
    with pytest.raises(DataError) as err:
        register_upload(src, data_dir, "ok", "markdown", {})
    assert err.value.key == "dataset_entry_bad_formatting"
    with pytest.raises(DataError) as err:
        register_upload(src, data_dir, "ok", "alpaca", {"messages": "x"})
    assert err.value.key == "dataset_entry_bad_mapping"
    with pytest.raises(DataError) as err:
        register_upload(tmp_path / "gone.json", data_dir, "gone", "alpaca", {})
    assert err.value.key == "upload_missing"
    assert list(load_registry(data_dir)) == list(MIXED_REGISTRY)


# --- the light tokenizer


def test_light_tokenizer_matches_transformers(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    light, full = load_light_tokenizer(tiny_model_dir), AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in ["Hello world", "<|im_start|>user\nhi<|im_end|>\n", "é 漢字 <think>x</think>", " a\t\n\nb<|endoftext|>"]:
        ids = light.encode(text, add_special_tokens=False)
        assert ids == full.encode(text, add_special_tokens=False)
        assert light.decode(ids) == full.decode(ids) == text
        assert "".join(piece for _, _, piece in light.token_pieces(ids)) == text
    for attr in ("bos_token", "eos_token", "pad_token", "bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(light, attr) == getattr(full, attr), attr
    assert light.convert_tokens_to_ids(["<|im_end|>", "<think>"]) == full.convert_tokens_to_ids(["<|im_end|>", "<think>"])
    assert len(light) == len(full)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}]
    assert light.apply_chat_template(messages, add_generation_prompt=False) == full.apply_chat_template(
        messages, tokenize=False)


def test_preview_tokenizer_must_be_on_this_computer(tmp_path: Path, studio_home: Path) -> None:
    for model, key in [("demo", "preview_needs_demo_model"), ("some-org/not-downloaded", "preview_needs_local_model"),
                       (str(tmp_path / "missing"), "preview_needs_local_model"), (str(tmp_path), "preview_no_tokenizer_json")]:
        with pytest.raises(ModelError) as err:
            load_light_tokenizer(model)
        assert err.value.key == key, model


# --- the token preview


def test_preview_marks_exactly_the_reply_as_learned(tiny_model_dir: Path) -> None:
    row = preview_rows(SHIPPED, "identity", page=0, page_size=1)[0][0]
    reply = row["output"].replace("{{name}}", "Nova").replace("{{author}}", "Acme")
    page = render_preview(SHIPPED, "identity", str(tiny_model_dir), None, 1024, 0, placeholders=IDENTITY)
    spans = token_spans(page)
    assert "".join(text for css, text in spans if css == "tok-learned") == reply + "<|im_end|>\n"
    prompt = "".join(text for css, text in spans if css == "tok-masked")
    assert prompt == f"<|im_start|>user\n{row['instruction']}<|im_end|>\n<|im_start|>assistant\n"
    assert "chatml" in page and "Fits in" in page and "{{name}}" not in page
    # train_on_prompt learns every token; a tiny cutoff says how much was cut.
    everything = render_preview(SHIPPED, "identity", str(tiny_model_dir), "chatml", 1024, 0, train_on_prompt=True)
    assert {css for css, _ in token_spans(everything)} == {"tok-learned"}
    cut = render_preview(SHIPPED, "identity", str(tiny_model_dir), None, 24, 0)
    assert len(token_spans(cut)) <= 24 and "Too long: cut to the max length of 24 tokens" in cut


def test_preview_escapes_text_and_handles_each_kind(data_dir: Path, tiny_model_dir: Path) -> None:
    page = render_preview(data_dir, "chat", str(tiny_model_dir), None, 256, 2)
    assert "<b>" not in page and "Row 2 of 7" in page
    assert "Question 2 <b>?</b>" in "".join(text for _, text in token_spans(page))
    pairs = render_preview(data_dir, "pairs", str(tiny_model_dir), None, 256, 0)
    assert "(chosen)" in pairs and "rejected reply" in pairs
    learned = "".join(text for css, text in token_spans(pairs) if css == "tok-learned")
    assert learned == "Hello!<|im_end|>\nGo away.<|im_end|>\n"
    assert "good reply" in render_preview(data_dir, "labelled", str(tiny_model_dir), None, 256, 0)
    text = render_preview(data_dir, "chat", str(tiny_model_dir), None, 256, 0, stage="pt")
    spans = token_spans(text)
    assert {css for css, _ in spans} == {"tok-learned"} and spans[-1][1] == "<|endoftext|>"
    with pytest.raises(DataError) as err:
        render_preview(data_dir, "chat", str(tiny_model_dir), None, 256, 7)
    assert err.value.key == "preview_row_out_of_range"
    with pytest.raises(StudioError) as err:
        render_preview(data_dir, "remote", str(tiny_model_dir), None, 256, 0)
    assert err.value.key == "preview_hub_dataset"


def test_length_stats_counts_truncations(data_dir: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    rows = [{"instruction": "Hi", "output": "Hello"}, {"instruction": "Hi", "output": "word " * 200},
            {"instruction": "Yo", "output": "Hey"}]
    register_upload(write_json(tmp_path / "long.json", rows), data_dir, "long", "alpaca", {})
    stats = length_stats(data_dir, "long", str(tiny_model_dir), None, 64)
    assert stats["rows"] == stats["total_rows"] == 3 and stats["truncated"] == 1
    assert stats["max"] > 200 > stats["p50"] and stats["p95"] == stats["max"]
    assert stats["histogram"]["count"].sum() == 3 and list(stats["histogram"].columns) == ["bucket", "count"]
    assert length_stats(data_dir, "long", str(tiny_model_dir), None, stats["max"])["truncated"] == 0
    sampled = length_stats(data_dir, "chat", str(tiny_model_dir), None, 4, max_rows=3)
    assert sampled["rows"] == 3 and sampled["total_rows"] == 7 and sampled["truncated"] == 3
    assert "3 of 7 rows" in format_length_stats(sampled)


# --- contracts


def test_studio_datasets_leave_torch_out(tiny_model_dir: Path, tmp_path: Path) -> None:
    upload = write_json(tmp_path / "up.json", [{"instruction": "q", "output": "a"}])
    script = textwrap.dedent(f"""
        import sys
        from studio import datasets
        data, model = {str(SHIPPED)!r}, {str(tiny_model_dir)!r}
        datasets.list_datasets(data, "sft")
        datasets.preview_rows(data, "identity")
        datasets.suggest_mapping(datasets.detect_columns({str(upload)!r}), "alpaca")
        datasets.register_upload({str(upload)!r}, {str(tmp_path / "data")!r}, "up", "alpaca", {{}})
        datasets.render_preview(data, "identity", model, None, 128, 1)
        datasets.render_preview(data, "identity", model, "tokenizer", 128, 1)
        datasets.length_stats(data, "identity", model, None, 128)
        print(sorted({{"torch", "transformers", "datasets", "peft", "trl"}} & set(sys.modules)))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_every_message_key_has_an_english_text() -> None:
    source = "".join((ROOT / "studio" / name).read_text(encoding="utf-8")
                     for name in ("datasets.py", "light_tokenizer.py"))
    keys = {f"error.{k}" for k in re.findall(r'Error\(\s*"(\w+)"', source)}
    keys |= set(re.findall(r'"(datasets\.[\w.]+)"', source))
    keys |= {f"datasets.preview.{k}" for k in ("chosen", "rejected", "kto_desirable", "kto_undesirable")}
    assert len(keys) > 20
    assert sorted(k for k in keys if k not in load_locale("en")) == []


def test_entries_that_fetch_over_the_network_are_marked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.data.registry import DatasetAttr
    from studio import datasets

    monkeypatch.setattr(datasets, "dataset_downloaded", lambda repo, hub="huggingface": repo == "org/cached")
    (tmp_path / "local_script").mkdir()
    marked = {source: datasets.needs_download(DatasetAttr("x", source, path), tmp_path)
              for source, path in (("file", "a.json"), ("hf_hub", "org/cached"), ("ms_hub", "org/other"),
                                   ("om_hub", "org/om"), ("cloud_file", "s3://bucket/a.json"),
                                   ("script", "local_script"))}
    assert marked == {"file": False, "hf_hub": False, "ms_hub": True, "om_hub": True, "cloud_file": True,
                      "script": False}
    assert datasets.needs_download(DatasetAttr("x", "script", "org/hub_script"), tmp_path)


def test_studio_registry_links_the_shipped_media(tmp_path):
    """A studio's own data folder (and one made before the media demos shipped) finds the demo images."""
    import json

    from studio.workspace import ensure_registry

    registry = ensure_registry(tmp_path / "data", local_only=True)
    entry = json.loads(registry.read_text(encoding="utf-8"))["mllm_demo"]
    rows = json.loads((registry.parent / entry["file_name"]).read_text(encoding="utf-8"))
    assert (registry.parent / rows[0]["images"][0]).is_file()
    (registry.parent / "mllm_demo_data").unlink()  # an older folder: its registry exists, its links do not
    ensure_registry(tmp_path / "data", local_only=True)
    assert (registry.parent / rows[0]["images"][0]).is_file()
