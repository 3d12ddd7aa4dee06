"""LLaMA-Factory's registry schema, all of it: only used entries are checked, every source, sampling, and
training from `tokenized_path` alone."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from engine.config import load_config
from engine.data import get_dataset_attrs, load_examples, load_registry
from engine.data.pipeline import check_local_data
from engine.data.sources import check_source
from engine.errors import DataError

# An unpacked LLaMA-Factory source distribution (`pip download llamafactory==0.9.5 --no-deps --no-binary :all:`),
# for the check against its own registry and example configs; skipped when not given.
LF_ROOT = Path(os.environ.get("STUDIO_LF_SOURCE") or "llamafactory-source-not-given")


def raises(key: str, fn, *args, **kwargs) -> DataError:
    """Call fn, expect DataError `key` with every placeholder of its message filled."""
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.key == key, str(err)
    assert not re.search(r"\{[a-z_]+\}", str(err)), f"unfilled placeholder in: {err}"
    return err


def write_registry(folder: Path, entries: dict, files: dict[str, object] | None = None) -> Path:
    """A dataset folder with a registry and small files (a list/dict is written as JSON, a str as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps(entries), encoding="utf-8")
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content)
        path.write_text(text, encoding="utf-8")
    return folder


def alpaca(count: int, tag: str = "q") -> list[dict]:
    return [{"instruction": f"{tag}{i}", "output": f"a{i}"} for i in range(count)]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def prompts(examples: list[dict]) -> list[str]:
    return [e["messages"][0]["content"] for e in examples]


def fsspec_registry():
    """fsspec's registry module (the package attribute of that name is a read-only view)."""
    return importlib.import_module("fsspec.registry")


def config_for(folder: Path, *overrides: str):
    return load_config(None, ["model_name_or_path=unused", f"dataset_dir={folder}", "output_dir=unused", *overrides])


# --- only the entries a run uses are checked


BROKEN = {
    "typo": {"file_name": "x.json", "formating": "sharegpt"},
    "nowhere": {"formatting": "alpaca"},
    "not_an_object": "x.json",
    "two": {"file_name": "x.json", "hf_hub_url": "org/x"},
    "bad_cloud": {"cloud_file_name": "ftp://host/x.json"},
    "bad_columns": {"file_name": "x.json", "columns": {"question": "q"}},
    "om_only": {"om_hub_url": "someone/data"},
}


def test_unused_broken_entries_never_block(tmp_path: Path) -> None:
    folder = write_registry(tmp_path / "d", {**BROKEN, "mine": {"file_name": "mine.json"}}, {"mine.json": alpaca(2)})
    assert set(load_registry(folder)) == {*BROKEN, "mine"}  # reading the registry checks no entry
    (attr,) = get_dataset_attrs("mine", folder)
    assert attr.load_from == "file"
    assert prompts(load_examples("mine", folder)) == ["q0", "q1"]
    assert check_local_data(config_for(folder, "dataset=mine")) == 2
    # A used entry is checked, and says what is wrong with it.
    expected = {"typo": "dataset_entry_unknown_key", "nowhere": "dataset_entry_no_source",
                "not_an_object": "dataset_entry_not_object", "two": "dataset_entry_two_sources",
                "bad_cloud": "dataset_entry_bad_value", "bad_columns": "dataset_entry_bad_mapping"}
    for name, key in expected.items():
        err = raises(key, get_dataset_attrs, f"mine,{name}", folder)
        assert f"'{name}'" in str(err)


# --- which source an entry loads from


@pytest.mark.parametrize(
    ("entry", "env", "expected"),
    [
        ({"hf_hub_url": "o/hf", "ms_hub_url": "o/ms", "om_hub_url": "o/om"}, {}, ("hf_hub", "o/hf")),
        ({"hf_hub_url": "o/hf", "ms_hub_url": "o/ms", "om_hub_url": "o/om"}, {"USE_MODELSCOPE_HUB": "1"},
         ("ms_hub", "o/ms")),
        ({"hf_hub_url": "o/hf", "ms_hub_url": "o/ms", "om_hub_url": "o/om"}, {"USE_OPENMIND_HUB": "true"},
         ("om_hub", "o/om")),
        ({"hf_hub_url": "o/hf", "ms_hub_url": "o/ms", "om_hub_url": "o/om"},
         {"USE_OPENMIND_HUB": "1", "USE_MODELSCOPE_HUB": "1"}, ("ms_hub", "o/ms")),
        ({"hf_hub_url": "o/hf", "om_hub_url": "o/om"}, {"USE_OPENMIND_HUB": "0"}, ("hf_hub", "o/hf")),
        ({"om_hub_url": "o/om"}, {}, ("om_hub", "o/om")),
        ({"ms_hub_url": "o/ms", "om_hub_url": "o/om"}, {}, ("ms_hub", "o/ms")),
        ({"hf_hub_url": "o/hf", "script_url": "folder"}, {}, ("hf_hub", "o/hf")),
        ({"script_url": "folder", "cloud_file_name": "s3://b/x.json"}, {}, ("script", "folder")),
        ({"cloud_file_name": "gs://b/x.jsonl"}, {}, ("cloud_file", "gs://b/x.jsonl")),
        ({"file_name": "x.json"}, {}, ("file", "x.json")),
    ],
)
def test_source_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry: dict, env: dict,
                           expected: tuple[str, str]) -> None:
    for variable in ("USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    folder = write_registry(tmp_path / "d", {"e": {**entry, "subset": "s", "split": "dev", "folder": "f"}})
    (attr,) = get_dataset_attrs("e", folder)
    assert (attr.load_from, attr.path_or_id) == expected
    assert (attr.subset, attr.split, attr.folder) == ("s", "dev", "f")


# --- the hubs


def test_om_hub_only_entry_without_openmind_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openmind", None)  # makes `import openmind` fail
    folder = write_registry(tmp_path / "d", {"om_only": {"om_hub_url": "someone/data"}})
    (attr,) = get_dataset_attrs("om_only", folder)
    for call in (lambda: load_examples("om_only", folder), lambda: check_source(attr, folder),
                 lambda: check_local_data(config_for(folder, "dataset=om_only"))):
        text = str(raises("om_hub_unavailable", call))
        for fragment in ("'om_only'", "someone/data", "openmind", "pip install openmind", "USE_OPENMIND_HUB",
                         "file_name"):
            assert fragment in text


def test_om_hub_loads_through_openmind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class OmDataset:
        @staticmethod
        def load_dataset(**kwargs):
            calls.append(kwargs)
            return types.SimpleNamespace(to_list=lambda: alpaca(2, "om"))

    monkeypatch.setitem(sys.modules, "openmind", types.SimpleNamespace(OmDataset=OmDataset))
    monkeypatch.setenv("USE_OPENMIND_HUB", "1")
    entry = {"hf_hub_url": "org/hf", "om_hub_url": "org/om", "subset": "zh", "split": "validation", "folder": "v2"}
    folder = write_registry(tmp_path / "d", {"both": entry})
    assert prompts(load_examples("both", folder)) == ["om0", "om1"]
    assert calls == [{"path": "org/om", "name": "zh", "split": "validation", "data_dir": "v2"}]
    # A private dataset: the run's om_hub_token goes to OpenMind, as hf_hub_token / ms_hub_token go to theirs.
    load_examples("both", folder, hub_tokens={"om_hub": "om-secret", "hf_hub": "hf-secret"})
    assert calls[-1]["token"] == "om-secret"


def test_modelscope_and_hugging_face_get_subset_split_and_folder(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    class MsDataset:
        @staticmethod
        def load(*args, **kwargs):
            calls.append(("ms", args, kwargs))
            return types.SimpleNamespace(to_hf_dataset=lambda: datasets.Dataset.from_list(alpaca(1, "ms")))

    def load_dataset(*args, **kwargs):
        calls.append(("hf", args, kwargs))
        return datasets.Dataset.from_list(alpaca(1, "hf"))

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(MsDataset=MsDataset))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    where = {"subset": "zh", "split": "test", "folder": "v2"}
    folder = write_registry(tmp_path / "d", {"ms": {"ms_hub_url": "org/ms", **where},
                                             "hf": {"hf_hub_url": "org/hf", **where}})
    assert prompts(load_examples("ms,hf", folder)) == ["ms0", "hf0"]
    assert calls == [("ms", ("org/ms",), {"subset_name": "zh", "split": "test", "data_dir": "v2"}),
                     ("hf", ("org/hf",), {"name": "zh", "split": "test", "data_dir": "v2"})]


# --- script_url


@pytest.fixture()
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` writes its Arrow cache under tmp_path, not the user's cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    return tmp_path / "hf-datasets"


README_CONFIGS = """---
configs:
- config_name: small
  data_files:
  - split: train
    path: small/train.parquet
- config_name: big
  data_files:
  - split: train
    path: big/train.parquet
  - split: test
    path: big/test.parquet
---
"""


def test_script_url_folder_of_data_files_with_subset_split_and_folder(tmp_path: Path, datasets_cache: Path) -> None:
    import pandas as pd

    entries = {
        "small": {"script_url": "configs", "subset": "small"},
        "big_test": {"script_url": "configs", "subset": "big", "split": "test"},
        "by_name": {"script_url": "splits", "split": "test"},
        "sub_folder": {"script_url": "splits", "folder": "v2"},
        "no_subset": {"script_url": "configs", "subset": "medium"},
        "one_file": {"script_url": "splits/train.jsonl"},
    }
    files = {"configs/README.md": README_CONFIGS, "splits/train.jsonl": jsonl(alpaca(2, "train")), "splits/test.jsonl": jsonl(alpaca(1, "test")),
             "splits/v2/train.jsonl": jsonl(alpaca(1, "v2"))}
    folder = write_registry(tmp_path / "d", entries, files)
    for part in ("big", "small"):
        (folder / "configs" / part).mkdir()
    pd.DataFrame(alpaca(1, "small")).to_parquet(folder / "configs" / "small" / "train.parquet")
    pd.DataFrame(alpaca(3, "big")).to_parquet(folder / "configs" / "big" / "train.parquet")
    pd.DataFrame(alpaca(2, "bigtest")).to_parquet(folder / "configs" / "big" / "test.parquet")
    assert prompts(load_examples("small", folder)) == ["small0"]
    assert prompts(load_examples("big_test", folder)) == ["bigtest0", "bigtest1"]
    assert prompts(load_examples("by_name", folder)) == ["test0"]
    assert prompts(load_examples("sub_folder", folder)) == ["v20"]
    assert prompts(load_examples("one_file", folder)) == ["train0", "train1"]
    err = raises("hub_load_failed", load_examples, "no_subset", folder)
    assert "medium" in str(err) and "'no_subset'" in str(err)
    for name in entries:
        check_source(get_dataset_attrs(name, folder)[0], folder)  # nothing to refuse before loading


def test_script_url_loading_scripts_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = {"legacy": {"script_url": "legacy"}, "py_file": {"script_url": "loader.py"},
               "nowhere": {"script_url": "no_such_folder"}, "outside": {"script_url": "../elsewhere"},
               "hub_script": {"script_url": "org/scripted"}}
    files = {"legacy/legacy.py": "# a loading script\n", "legacy/data.json": alpaca(1), "loader.py": "# script\n"}
    folder = write_registry(tmp_path / "d", entries, files)
    version = metadata.version("datasets")
    for name in ("legacy", "py_file"):
        (attr,) = get_dataset_attrs(name, folder)
        for call in (lambda n=name: load_examples(n, folder), lambda a=attr: check_source(a, folder)):
            text = str(raises("dataset_script_unsupported", call))
            assert f"'{name}'" in text and version in text and "file_name" in text
    err = raises("dataset_script_missing", load_examples, "nowhere", folder)
    assert "no_such_folder" in str(err) and str(folder / "no_such_folder") in str(err)
    raises("dataset_script_outside", load_examples, "outside", folder)
    # A hub id goes to the hub; a hub repository that holds a loading script is refused the same way.
    import datasets

    def scripted(*args, **kwargs):
        raise RuntimeError("Dataset scripts are no longer supported, but found scripted.py")

    monkeypatch.setattr(datasets, "load_dataset", scripted)
    err = raises("dataset_script_unsupported", load_examples, "hub_script", folder)
    assert "org/scripted" in str(err)


# --- cloud_file_name


@pytest.fixture()
def fake_s3(monkeypatch: pytest.MonkeyPatch):
    """An in-memory filesystem answering s3:// paths, standing in for s3fs."""
    from fsspec.implementations.memory import MemoryFileSystem

    class FakeS3(MemoryFileSystem):
        protocol = ("s3",)
        store: dict = {}
        pseudo_dirs = [""]

        @classmethod
        def _strip_protocol(cls, path):
            return MemoryFileSystem._strip_protocol(path.removeprefix("s3://"))

    monkeypatch.setitem(fsspec_registry()._registry, "s3", FakeS3)
    fs = FakeS3()
    yield fs
    FakeS3.store.clear()


def test_cloud_files(tmp_path: Path, fake_s3) -> None:
    fake_s3.pipe("s3://bucket/one.json", json.dumps(alpaca(2, "one")).encode())
    fake_s3.pipe("s3://bucket/parts/b.jsonl", jsonl(alpaca(1, "b")).encode())
    fake_s3.pipe("s3://bucket/parts/a.jsonl", jsonl(alpaca(1, "a")).encode())
    fake_s3.pipe("s3://bucket/parts/_SUCCESS", b"")
    fake_s3.pipe("s3://bucket/bad/rows.jsonl", b'{"instruction": "x", "output": "y"}\n{"instruction": 3}\n')
    fake_s3.pipe("s3://bucket/empty/_SUCCESS", b"")
    entries = {"one": {"cloud_file_name": "s3://bucket/one.json"},
               "parts": {"cloud_file_name": "s3://bucket/parts", "num_samples": 2},
               "bad": {"cloud_file_name": "s3://bucket/bad"},
               "missing": {"cloud_file_name": "s3://bucket/nothing.json"},
               "empty": {"cloud_file_name": "s3://bucket/empty"}}
    folder = write_registry(tmp_path / "d", entries)
    assert prompts(load_examples("one", folder)) == ["one0", "one1"]
    assert sorted(prompts(load_examples("parts", folder))) == ["a0", "b0"]
    err = raises("dataset_bad_rows", load_examples, "bad", folder)
    assert "s3://bucket/bad/rows.jsonl:2" in str(err)
    err = raises("cloud_file_failed", load_examples, "missing", folder)
    assert "s3://bucket/nothing.json" in str(err) and "AWS_ACCESS_KEY_ID" in str(err)
    raises("cloud_file_no_data", load_examples, "empty", folder)
    assert check_local_data(config_for(folder, "dataset=one")) is None  # left to the training process


@pytest.mark.parametrize(("path", "package"), [("s3://bucket/x.json", "s3fs"), ("gs://bucket/x.json", "gcsfs")])
def test_cloud_backend_missing_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str,
                                            package: str) -> None:

    for protocol in ("s3", "gs"):
        monkeypatch.delitem(fsspec_registry()._registry, protocol, raising=False)
    monkeypatch.setitem(sys.modules, package, None)
    folder = write_registry(tmp_path / "d", {"cloud": {"cloud_file_name": path}})
    for call in (lambda: load_examples("cloud", folder), lambda: check_local_data(config_for(folder, "dataset=cloud"))):
        text = str(raises("cloud_file_backend_missing", call))
        assert f"pip install {package}" in text and path in text and "'cloud'" in text


# --- file_name, num_samples, columns and tags


def test_folder_of_mixed_files_including_arrow(tmp_path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    folder = write_registry(tmp_path / "d", {"parts": {"file_name": "parts"}, "arrow": {"file_name": "one.arrow"}},
                            {"parts/a.json": alpaca(1, "a"), "parts/b.jsonl": jsonl(alpaca(1, "b"))})
    pd.DataFrame(alpaca(1, "c")).to_parquet(folder / "parts" / "c.parquet")
    table = pa.Table.from_pylist(alpaca(2, "d"))
    with pa.OSFile(str(folder / "parts" / "d.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)  # the stream format `datasets` writes
    with pa.OSFile(str(folder / "one.arrow"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)  # the random-access file format
    assert prompts(load_examples("parts", folder)) == ["a0", "b0", "c0", "d0", "d1"]
    assert prompts(load_examples("arrow", folder)) == ["d0", "d1"]
    (folder / "one.arrow").write_bytes(b"not arrow at all")
    raises("dataset_file_unreadable", load_examples, "arrow", folder)


def test_num_samples_as_llama_factory_samples(tmp_path: Path) -> None:
    entries = {"fewer": {"file_name": "rows.json", "num_samples": 3},
               "more": {"file_name": "rows.json", "num_samples": 12}}
    folder = write_registry(tmp_path / "d", entries, {"rows.json": alpaca(5)})
    fewer = prompts(load_examples("fewer", folder))
    assert len(fewer) == len(set(fewer)) == 3 and fewer == prompts(load_examples("fewer", folder))  # seeded
    more = prompts(load_examples("more", folder))
    assert len(more) == 12 and set(more) == {f"q{i}" for i in range(5)}  # every row, then repeats
    # num_samples first, then max_samples of what that gave (LLaMA-Factory's order).
    assert prompts(load_examples("more", folder, max_samples=4)) == more[:4]


def test_every_column_and_tag_key(tmp_path: Path) -> None:
    alpaca_row = {"ask": "Q", "extra": "more", "say": "A", "past": [["h1", "r1"]], "sys": "S",
                  "fns": [{"name": "f"}], "pics": ["a.png"], "clips": "v.mp4", "sounds": ["s.wav"]}
    talk = [("boss", "rules"), ("me", "hi"), ("fn", "{}"), ("tool", "ok"), ("bot", "done")]
    chat_row = {"talk": [{"who": who, "text": text} for who, text in talk]}
    ranking_row = {"instruction": "pick", "good": "yes", "bad": "no"}
    kto_row = {"instruction": "rate", "output": "fine", "thumbs": "false"}
    entries = {
        "alpaca_all": {"file_name": "alpaca.json", "columns": {
            "prompt": "ask", "query": "extra", "response": "say", "history": "past", "system": "sys", "tools": "fns",
            "images": "pics", "videos": "clips", "audios": "sounds"}},
        "sharegpt_all": {"file_name": "chat.json", "formatting": "sharegpt", "columns": {"messages": "talk"},
                         "tags": {"role_tag": "who", "content_tag": "text", "user_tag": "me", "assistant_tag": "bot",
                                  "observation_tag": "tool", "function_tag": "fn", "system_tag": "boss"}},
        "ranking": {"file_name": "ranking.json", "ranking": True, "columns": {"chosen": "good", "rejected": "bad"}},
        "kto": {"file_name": "kto.json", "columns": {"kto_tag": "thumbs"}},
    }
    folder = write_registry(tmp_path / "d", entries, {"alpaca.json": [alpaca_row], "chat.json": [chat_row],
                                                      "ranking.json": [ranking_row], "kto.json": [kto_row]})
    (first,) = load_examples("alpaca_all", folder)
    assert [m["content"] for m in first["messages"]] == ["h1", "r1", "Q\nmore", "A"]
    assert first["system"] == "S" and json.loads(first["tools"]) == [{"name": "f"}]
    assert (first["images"], first["videos"], first["audios"]) == (["a.png"], ["v.mp4"], ["s.wav"])
    (chat,) = load_examples("sharegpt_all", folder)
    assert chat["system"] == "rules"
    assert [m["role"] for m in chat["messages"]] == ["user", "function", "observation", "assistant"]
    (ranked,) = load_examples("ranking", folder)
    assert (ranked["chosen"], ranked["rejected"]) == ("yes", "no")
    (rated,) = load_examples("kto", folder)
    assert rated["kto_tag"] is False


def test_split_on_a_local_file_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_registry(tmp_path / "d", {"f": {"file_name": "rows.json", "split": "test"}},
                            {"rows.json": alpaca(2)})
    assert len(load_examples("f", folder)) == 2
    assert "all of file_name 'rows.json' is read" in caplog.text


# --- training from tokenized_path alone


def test_tokenized_path_alone_trains_from_the_saved_tokens(tmp_path: Path, tiny_model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    from engine.data import pipeline
    from engine.data.pipeline import prepare_datasets
    from engine.templates import fix_tokenizer, get_template

    monkeypatch.setenv("STUDIO_TOKENIZED_CACHE", str(tmp_path / "cache"))
    tokenizer, template = AutoTokenizer.from_pretrained(tiny_model_dir), get_template("chatml")
    fix_tokenizer(template, tokenizer)
    folder = write_registry(tmp_path / "d", {"rows": {"file_name": "rows.json"}}, {"rows.json": alpaca(6)})
    saved = tmp_path / "tokenized"
    first = prepare_datasets(config_for(folder, "dataset=rows", f"tokenized_path={saved}", "val_size=2"),
                             template, tokenizer)
    (folder / "rows.json").unlink()  # the saved tokens are all the next run has

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("tokenized although tokenized_path holds the rows")

    monkeypatch.setattr(pipeline, "tokenize_splits", no_tokenizing)
    alone = config_for(folder, f"tokenized_path={saved}")
    again = prepare_datasets(alone, template, tokenizer)
    assert [again[0][i] for i in range(len(again[0]))] == [first[0][i] for i in range(len(first[0]))]
    assert len(again[1]) == len(first[1]) == 2  # the saved eval split comes along
    assert check_local_data(alone) == 4
    missing = config_for(folder, f"tokenized_path={tmp_path / 'nothing'}")
    for call in (lambda: prepare_datasets(missing, template, tokenizer), lambda: check_local_data(missing)):
        assert str(tmp_path / "nothing") in str(raises("tokenized_path_empty", call))
    assert not (tmp_path / "nothing").exists()
    overwrite = config_for(folder, f"tokenized_path={saved}", "overwrite_cache=true")
    raises("tokenized_path_overwrite_no_dataset", prepare_datasets, overwrite, template, tokenizer)
    (saved / "meta.json").write_text("{broken", encoding="utf-8")
    for call in (lambda: prepare_datasets(alone, template, tokenizer), lambda: check_local_data(alone)):
        raises("tokenized_path_unreadable", call)


# --- LLaMA-Factory's own stock registry (where its source is unpacked; CI skips this)


@pytest.mark.skipif(not (LF_ROOT / "data" / "dataset_info.json").is_file(), reason="set STUDIO_LF_SOURCE to an unpacked LLaMA-Factory source")
def test_llama_factory_stock_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(LF_ROOT)
    for variable in ("USE_MODELSCOPE_HUB", "USE_OPENMIND_HUB"):
        monkeypatch.delenv(variable, raising=False)
    registry = load_registry("data")
    attrs = get_dataset_attrs(list(registry), "data")  # every entry resolves
    assert len(attrs) == len(registry) > 50
    assert {a.load_from for a in attrs} <= {"file", "hf_hub", "ms_hub"}
    examples = sorted({name.strip() for path in (LF_ROOT / "examples").rglob("*.yaml")
                       for line in path.read_text(encoding="utf-8").splitlines()
                       if line.startswith(("dataset:", "eval_dataset:"))
                       for name in line.split(":", 1)[1].split("#")[0].split(",") if name.strip()})
    used = [name for name in examples if name in registry]
    assert {"identity", "alpaca_en_demo", "c4_demo", "dpo_en_demo", "kto_en_demo"} <= set(used)
    for attr in get_dataset_attrs(used, "data"):
        if attr.load_from == "file":
            pretraining = attr.columns.get("prompt") == "text"
            assert load_examples(attr.name, "data", require_response=not pretraining)
    for name in ("glaive_toolcall_en_demo", "alpaca_zh_demo", "mllm_demo", "dpo_zh_demo", "wiki_demo"):
        assert load_examples(name, "data", require_response=name != "wiki_demo")
    monkeypatch.setenv("USE_OPENMIND_HUB", "1")
    monkeypatch.setitem(sys.modules, "openmind", None)
    (attr,) = get_dataset_attrs("alpaca_en", "data")
    assert attr.load_from == "om_hub"
    raises("om_hub_unavailable", check_source, attr, "data")
