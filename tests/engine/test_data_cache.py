"""Tokenization cache, tokenized_path, tokenizing in worker processes, and the batched encoder's identical output."""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from engine.config import load_config
from engine.data import fingerprint, load_examples, workers
from engine.data import pipeline as pipeline_module
from engine.data.cache import cached_splits
from engine.data.columns import TokenColumns
from engine.data.fingerprint import CacheKey, cache_key
from engine.data.pipeline import prepare_datasets
from engine.data.preprocess import TokenizedDataset, tokenize_pt, tokenize_sft
from engine.errors import DataError, StudioError
from engine.paths import tokenized_cache_dir
from engine.templates import IGNORE_INDEX, fix_tokenizer, get_template, list_templates, render_conversation
from engine.templates import encode as encode_module

ROOT = Path(__file__).resolve().parents[2]
SFT_DEMO_SETS = ("identity", "alpaca_en_demo", "alpaca_zh_demo", "multiturn_en_demo", "glaive_toolcall_en_demo")


@pytest.fixture(scope="module")
def demo_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def fitted(tokenizer, name: str = "chatml"):
    """A copy of the tokenizer fixed for template `name`, and the template."""
    tokenizer, template = copy.deepcopy(tokenizer), get_template(name)
    fix_tokenizer(template, tokenizer)
    return template, tokenizer


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A dataset folder: 40 alpaca rows, 20 identity rows, 30 c4 texts, two hub entries."""
    folder = tmp_path / "data"
    folder.mkdir()
    alpaca = json.loads((ROOT / "data" / "alpaca_en_demo.json").read_text(encoding="utf-8"))[:40]
    (folder / "alpaca_small.json").write_text(json.dumps(alpaca), encoding="utf-8")
    identity = json.loads((ROOT / "data" / "identity.json").read_text(encoding="utf-8"))[:20]
    (folder / "identity.json").write_text(json.dumps(identity), encoding="utf-8")
    c4 = (ROOT / "data" / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines()[:30]
    (folder / "c4_small.jsonl").write_text("\n".join(c4) + "\n", encoding="utf-8")
    registry = {"alpaca_small": {"file_name": "alpaca_small.json"}, "identity": {"file_name": "identity.json"},
                "c4_small": {"file_name": "c4_small.jsonl", "columns": {"prompt": "text"}},
                "hub_set": {"hf_hub_url": "someone/hub_set"}, "ms_set": {"ms_hub_url": "someone/ms_set"}}
    (folder / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return folder


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STUDIO_TOKENIZED_CACHE", str(folder))
    return folder


@pytest.fixture()
def tokenize_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts how often the pipeline really reads and tokenizes the datasets."""
    calls: list[int] = []
    real = pipeline_module.tokenize_splits

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "tokenize_splits", counted)
    return calls


def make_config(data_dir: Path, *overrides: str):
    return load_config(None, ["model_name_or_path=unused", f"dataset_dir={data_dir}", "dataset=alpaca_small",
                              "cutoff_len=256", "output_dir=unused", *overrides])


def rows_of(dataset: TokenizedDataset | None) -> list[dict]:
    return [dataset[i] for i in range(len(dataset))] if dataset is not None else []


# --- hits, misses, overwrite, corruption ---


def test_second_run_loads_from_the_cache(data_dir, cache_dir, demo_tokenizer, tokenize_calls, caplog):
    template, tokenizer = fitted(demo_tokenizer)
    config = make_config(data_dir, "val_size=5")
    first_train, first_eval = prepare_datasets(config, template, tokenizer)
    with caplog.at_level(logging.INFO, logger="engine.data.cache"):
        second_train, second_eval = prepare_datasets(config, template, tokenizer)
    assert len(tokenize_calls) == 1
    assert "from the cache" in caplog.text
    assert len(first_train) == 35 and len(first_eval) == 5
    assert rows_of(second_train) == rows_of(first_train) and rows_of(second_eval) == rows_of(first_eval)
    assert second_train.num_tokens == first_train.num_tokens > 0
    assert [p.name for p in cache_dir.iterdir() if p.is_dir()] == [cache_key(config, template, tokenizer).digest]


def _rewrite_first_row(data_dir: Path) -> None:
    path = data_dir / "alpaca_small.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    rows[0]["output"] += " Changed."
    path.write_text(json.dumps(rows), encoding="utf-8")


def _add_registry_key(data_dir: Path) -> None:
    path = data_dir / "dataset_info.json"
    registry = json.loads(path.read_text(encoding="utf-8"))
    registry["alpaca_small"]["num_samples"] = 10
    path.write_text(json.dumps(registry), encoding="utf-8")


CHANGES = {
    "file contents": ([], _rewrite_first_row),
    "registry entry": ([], _add_registry_key),
    "dataset names": (["dataset=alpaca_small,identity"], None),
    "eval dataset": (["eval_dataset=identity"], None),
    "max_samples": (["max_samples=10"], None),
    "val_size": (["val_size=0.2"], None),
    "seed": (["seed=7"], None),
    "mix strategy": (["dataset=alpaca_small,identity", "mix_strategy=interleave_under"], None),
    "identity placeholders": (["identity_name=Bob"], None),
    "cutoff_len": (["cutoff_len=64"], None),
    "train_on_prompt": (["train_on_prompt=true"], None),
    "mask_history": (["mask_history=true"], None),
    "default_system": (["default_system=Be brief."], None),
    "enable_thinking": (["enable_thinking=false"], None),
    "stage": (["stage=pt"], None),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_input_change_changes_the_key(change, data_dir, demo_tokenizer):
    template, tokenizer = fitted(demo_tokenizer)
    base = cache_key(make_config(data_dir), template, tokenizer)
    overrides, edit = CHANGES[change]
    if edit:
        edit(data_dir)
    changed = cache_key(make_config(data_dir, *overrides), template, tokenizer)
    assert changed.digest != base.digest


def test_template_tokenizer_packing_and_version_change_the_key(data_dir, demo_tokenizer, monkeypatch):
    template, tokenizer = fitted(demo_tokenizer)
    config = make_config(data_dir)
    base = cache_key(config, template, tokenizer).digest
    qwen, qwen_tokenizer = fitted(demo_tokenizer, "qwen")
    assert cache_key(config, qwen, qwen_tokenizer).digest != base
    grown = copy.deepcopy(tokenizer)
    grown.add_tokens(["<new_token>"])
    assert cache_key(config, template, grown).digest != base
    pt = make_config(data_dir, "stage=pt", "dataset=c4_small")
    packed, unpacked = (cache_key(pt, None, tokenizer), cache_key(make_config(data_dir, "stage=pt", "packing=false",
                                                                             "dataset=c4_small"), None, tokenizer))
    assert packed.digest != unpacked.digest
    monkeypatch.setattr(fingerprint, "CACHE_VERSION", fingerprint.CACHE_VERSION + 1)
    assert cache_key(config, template, tokenizer).digest != base


@pytest.mark.parametrize("overrides", [["learning_rate=1e-3"], ["preprocessing_num_workers=4"], ["packing=true"],
                                       ["preprocessing_batch_size=7"], ["overwrite_cache=true"]])
def test_settings_that_leave_the_rows_alone_keep_the_key(overrides, data_dir, demo_tokenizer):
    template, tokenizer = fitted(demo_tokenizer)
    base = cache_key(make_config(data_dir), template, tokenizer)
    assert cache_key(make_config(data_dir, *overrides), template, tokenizer).digest == base.digest


def test_code_digest_follows_the_code_that_shapes_rows(tmp_path, monkeypatch):
    import shutil

    package = tmp_path / "engine"
    shutil.copytree(ROOT / "engine" / "templates", package / "templates")
    shutil.copytree(ROOT / "engine" / "data", package / "data")
    monkeypatch.setattr(fingerprint, "_PACKAGE", package)

    def digest() -> str:
        fingerprint.code_digest.cache_clear()
        return fingerprint.code_digest()

    def edit(path: Path, old: str, new: str) -> None:
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    try:
        base = digest()
        preprocess = package / "data" / "preprocess.py"
        edit(preprocess, "def pack_rows(", "# a comment about packing\ndef pack_rows(")
        assert digest() == base  # packing and collating happen after the cache
        edit(preprocess, "dropped += 1", "dropped += 2")
        changed = digest()
        assert changed != base
        edit(package / "templates" / "render.py", '"""', '"""Edited. ')
        assert digest() != changed
    finally:
        fingerprint.code_digest.cache_clear()


def test_small_files_are_keyed_by_content_big_ones_by_mtime(data_dir, demo_tokenizer, monkeypatch):
    template, tokenizer = fitted(demo_tokenizer)
    config = make_config(data_dir)
    path = data_dir / "alpaca_small.json"
    base = cache_key(config, template, tokenizer).digest
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert cache_key(config, template, tokenizer).digest == base  # touched, same bytes: still a hit
    monkeypatch.setattr(fingerprint, "HASH_LIMIT_BYTES", 0)
    by_mtime = cache_key(config, template, tokenizer).digest
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert cache_key(config, template, tokenizer).digest != by_mtime


def test_hub_datasets_are_keyed_by_revision(data_dir, demo_tokenizer, monkeypatch):
    template, tokenizer = fitted(demo_tokenizer)
    config = make_config(data_dir, "dataset=hub_set")
    revisions = iter(["abc", "abc", "def", None])
    monkeypatch.setattr(fingerprint, "hub_revision", lambda repo_id: next(revisions))
    first, same, moved = (cache_key(config, template, tokenizer) for _ in range(3))
    assert first.digest == same.digest != moved.digest
    assert first.inputs["data"]["train"][0]["source"] == {"hub": "hf_hub", "id": "someone/hub_set", "revision": "abc"}
    assert cache_key(config, template, tokenizer) is None  # unknown revision: not cached
    assert cache_key(make_config(data_dir, "dataset=ms_set"), template, tokenizer) is None


def test_hub_revision_offline_reads_the_local_cache(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert fingerprint.hub_revision("someone/hub_set") is None
    ref = tmp_path / "datasets--someone--hub_set" / "refs" / "main"
    ref.parent.mkdir(parents=True)
    ref.write_text("0123abcd\n", encoding="utf-8")
    assert fingerprint.hub_revision("someone/hub_set") == "0123abcd"


def test_a_changed_input_tokenizes_again(data_dir, cache_dir, demo_tokenizer, tokenize_calls):
    template, tokenizer = fitted(demo_tokenizer)
    long_rows = rows_of(prepare_datasets(make_config(data_dir), template, tokenizer)[0])
    short_rows = rows_of(prepare_datasets(make_config(data_dir, "cutoff_len=48"), template, tokenizer)[0])
    assert len(tokenize_calls) == 2 and len([p for p in cache_dir.iterdir() if p.is_dir()]) == 2
    assert max(len(r["input_ids"]) for r in short_rows) <= 48 < max(len(r["input_ids"]) for r in long_rows)


def test_overwrite_cache_tokenizes_again(data_dir, cache_dir, demo_tokenizer, tokenize_calls):
    template, tokenizer = fitted(demo_tokenizer)
    first = rows_of(prepare_datasets(make_config(data_dir), template, tokenizer)[0])
    again = rows_of(prepare_datasets(make_config(data_dir, "overwrite_cache=true"), template, tokenizer)[0])
    assert len(tokenize_calls) == 2 and again == first
    prepare_datasets(make_config(data_dir), template, tokenizer)
    assert len(tokenize_calls) == 2


def _truncate(folder: Path) -> None:
    path = folder / "train" / "input_ids.npy"
    path.write_bytes(path.read_bytes()[:-40])


def _garble_meta(folder: Path) -> None:
    (folder / "meta.json").write_text("{not json", encoding="utf-8")


def _drop_split(folder: Path) -> None:
    for file in (folder / "train").iterdir():
        file.unlink()


def _bad_offsets(folder: Path) -> None:
    import numpy as np

    np.save(folder / "train" / "offsets.npy", np.array([0, 5, 3], dtype=np.int64))


@pytest.mark.parametrize("damage", [_truncate, _garble_meta, _drop_split, _bad_offsets])
def test_a_damaged_entry_is_tokenized_again(damage, data_dir, cache_dir, demo_tokenizer, tokenize_calls, caplog):
    template, tokenizer = fitted(demo_tokenizer)
    config = make_config(data_dir)
    first = rows_of(prepare_datasets(config, template, tokenizer)[0])
    damage(cache_dir / cache_key(config, template, tokenizer).digest)
    with caplog.at_level(logging.WARNING, logger="engine.data.cache"):
        again = rows_of(prepare_datasets(config, template, tokenizer)[0])
    assert again == first and len(tokenize_calls) == 2
    assert "unreadable" in caplog.text
    assert rows_of(prepare_datasets(config, template, tokenizer)[0]) == first  # repaired: a hit again
    assert len(tokenize_calls) == 2


def test_processes_racing_for_one_entry_tokenize_once(tmp_path):
    key = CacheKey("racing", {"test": True})
    calls: list[int] = []

    def slow_tokenize() -> dict[str, TokenColumns]:
        calls.append(1)
        time.sleep(0.3)
        return {"train": TokenColumns.from_rows([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}])}

    results: list = []
    threads = [threading.Thread(target=lambda: results.append(cached_splits(key, slow_tokenize, root=tmp_path)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert [r["train"].to_rows() for r in results] == [[{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}]] * 2


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("STUDIO_TOKENIZED_CACHE", raising=False)
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path))
    assert tokenized_cache_dir() == tmp_path.resolve() / "saves" / ".cache" / "tokenized"
    monkeypatch.setenv("STUDIO_TOKENIZED_CACHE", str(tmp_path / "elsewhere"))
    assert tokenized_cache_dir() == tmp_path / "elsewhere"


def test_packing_runs_after_loading(data_dir, cache_dir, demo_tokenizer, tokenize_calls):
    template, tokenizer = fitted(demo_tokenizer)
    plain = rows_of(prepare_datasets(make_config(data_dir), template, tokenizer)[0])
    packed = rows_of(prepare_datasets(make_config(data_dir, "packing=true"), template, tokenizer)[0])
    assert len(tokenize_calls) == 1  # one unpacked entry serves both
    assert all("position_ids" in row and len(row["input_ids"]) <= 256 for row in packed)
    assert len(packed) < len(plain)
    assert sum(len(r["input_ids"]) for r in packed) == sum(len(r["input_ids"]) for r in plain)


# --- tokenized_path ---


def test_tokenized_path_saves_then_loads_without_the_datasets(data_dir, cache_dir, demo_tokenizer, tokenize_calls,
                                                              tmp_path, caplog):
    template, tokenizer = fitted(demo_tokenizer)
    saved = tmp_path / "tokenized"
    first = rows_of(prepare_datasets(make_config(data_dir, f"tokenized_path={saved}"), template, tokenizer)[0])
    assert (saved / "meta.json").is_file() and len(tokenize_calls) == 1
    (data_dir / "alpaca_small.json").unlink()  # loading must not read the datasets at all
    with caplog.at_level(logging.INFO, logger="engine.data.cache"):
        again = rows_of(prepare_datasets(make_config(data_dir, f"tokenized_path={saved}"), template, tokenizer)[0])
    assert again == first and len(tokenize_calls) == 1
    assert "from tokenized_path" in caplog.text and "other settings" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.data.cache"):
        prepare_datasets(make_config(data_dir, f"tokenized_path={saved}", "cutoff_len=64"), template, tokenizer)
    assert "other settings (cutoff_len differ)" in caplog.text


def test_tokenized_path_overwrite_and_damage(data_dir, cache_dir, demo_tokenizer, tokenize_calls, tmp_path):
    template, tokenizer = fitted(demo_tokenizer)
    saved = tmp_path / "tokenized"
    saved.mkdir()  # an empty folder is fine to save into
    config = make_config(data_dir, f"tokenized_path={saved}", "cutoff_len=64")
    first = rows_of(prepare_datasets(config, template, tokenizer)[0])
    longer = rows_of(prepare_datasets(make_config(data_dir, f"tokenized_path={saved}", "overwrite_cache=true"),
                                      template, tokenizer)[0])
    assert longer != first and len(tokenize_calls) == 2
    _truncate(saved)
    assert rows_of(prepare_datasets(config, template, tokenizer)[0]) == first  # tokenized again (the cache hits)


def test_tokenized_path_refuses_a_folder_of_other_files(data_dir, cache_dir, demo_tokenizer, tmp_path):
    template, tokenizer = fitted(demo_tokenizer)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DataError) as info:
        prepare_datasets(make_config(data_dir, f"tokenized_path={foreign}"), template, tokenizer)
    assert info.value.key == "tokenized_path_not_ours" and str(foreign) in str(info.value)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"


# --- worker processes ---


def _many_examples(count: int) -> list[dict]:
    examples = load_examples(["alpaca_en_demo", "multiturn_en_demo"], ROOT / "data")
    return [{**e, "messages": [{**m, "content": f"{m['content']} #{i}"} for m in e["messages"]]}
            for i, e in ((i, examples[i % len(examples)]) for i in range(count))]


def test_worker_count_policy(monkeypatch):
    monkeypatch.setattr(workers, "available_cpus", lambda: 4)
    assert workers.worker_count(None, 10**6) == 1
    assert workers.worker_count(1, 10**6) == 1
    assert workers.worker_count(8, workers.MIN_PARALLEL_ROWS - 1) == 1
    assert workers.worker_count(2, workers.MIN_PARALLEL_ROWS) == 2
    assert workers.worker_count(16, 10**6) == 4


def test_workers_give_the_same_rows(demo_tokenizer):
    template, tokenizer = fitted(demo_tokenizer)
    examples = _many_examples(400)
    options = {"cutoff_len": 96, "mask_history": True}
    alone = tokenize_sft(examples, template, tokenizer, **options)
    pooled = tokenize_sft(examples, template, tokenizer, batch_size=37, num_workers=2, **options)
    assert pooled == alone and len(alone) > 300
    texts = [m["content"] for e in examples for m in e["messages"]]
    assert (tokenize_pt(texts, tokenizer, cutoff_len=64, packing=True, batch_size=100, num_workers=2)
            == tokenize_pt(texts, tokenizer, cutoff_len=64, packing=True))


@pytest.mark.slow
def test_spawned_workers_give_the_same_rows(demo_tokenizer, monkeypatch):
    template, tokenizer = fitted(demo_tokenizer)
    examples = _many_examples(200)
    alone = tokenize_sft(examples, template, tokenizer, cutoff_len=128)
    monkeypatch.setattr(workers, "_start_method", lambda: "spawn")
    assert tokenize_sft(examples, template, tokenizer, cutoff_len=128, batch_size=50, num_workers=2) == alone


def test_an_error_in_a_worker_is_raised_as_itself(demo_tokenizer):
    template, tokenizer = fitted(demo_tokenizer)
    examples = _many_examples(120)
    examples[100] = {"messages": [{"role": "assistant", "content": "a reply with no question"}]}
    with pytest.raises(DataError) as info:
        tokenize_sft(examples, template, tokenizer, cutoff_len=128, batch_size=30, num_workers=2)
    assert info.value.key == "misordered_messages"


def test_pipeline_with_workers_matches_one_process(tmp_path, cache_dir, demo_tokenizer, monkeypatch):
    template, tokenizer = fitted(demo_tokenizer)
    folder = tmp_path / "big"
    folder.mkdir()
    base = json.loads((ROOT / "data" / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    rows = [{**base[i % len(base)], "output": f"{base[i % len(base)]['output']} ({i})"}
            for i in range(workers.MIN_PARALLEL_ROWS + 100)]
    (folder / "big.json").write_text(json.dumps(rows), encoding="utf-8")
    (folder / "dataset_info.json").write_text(json.dumps({"big": {"file_name": "big.json"}}), encoding="utf-8")
    monkeypatch.setattr(workers, "available_cpus", lambda: 2)
    used: list[int] = []
    real_map = workers.map_chunks
    monkeypatch.setattr(workers, "map_chunks",
                        lambda *a, **k: used.append(k["workers"]) or real_map(*a, **k))
    alone = prepare_datasets(make_config(folder, "dataset=big"), template, tokenizer)[0]
    pooled = prepare_datasets(make_config(folder, "dataset=big", "preprocessing_num_workers=2",
                                          "overwrite_cache=true"), template, tokenizer)[0]
    assert used == [1, 2]
    assert len(pooled) == len(rows) and rows_of(pooled) == rows_of(alone)


# --- the batched encoder gives what one-at-a-time encoding gave ---


def reference_sft(examples, template, tokenizer, *, cutoff_len, train_on_prompt=False, mask_history=False,
                  default_system=None, enable_thinking=True):
    """tokenize_sft before batching: each conversation rendered alone, each text encoded on its own."""
    rows = []
    for example in examples:
        ids, labels = render_conversation(template, tokenizer, example["messages"],
                                          example.get("system") or default_system, example.get("tools"),
                                          cutoff_len=cutoff_len, train_on_prompt=train_on_prompt,
                                          mask_history=mask_history, enable_thinking=enable_thinking)
        if any(label != IGNORE_INDEX for label in labels):
            rows.append({"input_ids": ids, "labels": labels})
    return rows


def reference_pt(texts, tokenizer, *, cutoff_len, packing):
    """tokenize_pt before batching."""
    eos = tokenizer.eos_token_id
    encoded = [tokenizer.encode(text, add_special_tokens=False) + [eos] for text in texts]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    if not packing:
        return [{"input_ids": (bos + ids)[:cutoff_len], "labels": (bos + ids)[:cutoff_len]} for ids in encoded]
    stream = [token for ids in encoded for token in bos + ids]
    blocks = [stream[i:i + cutoff_len] for i in range(0, len(stream), cutoff_len)]
    if len(blocks) > 1 and len(blocks[-1]) < cutoff_len // 4:
        blocks.pop()
    return [{"input_ids": block, "labels": list(block)} for block in blocks]


SETTINGS = [{"cutoff_len": 1024}, {"cutoff_len": 40, "train_on_prompt": True},
            {"cutoff_len": 200, "mask_history": True, "enable_thinking": None, "default_system": "Be brief."},
            {"cutoff_len": 300, "enable_thinking": False}]


@pytest.fixture(scope="module")
def demo_examples() -> dict[str, list[dict]]:
    placeholders = {"name": "Tester", "author": "the tests"}
    return {name: load_examples(name, ROOT / "data", placeholders=placeholders)[:40] for name in SFT_DEMO_SETS}


def _outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StudioError as err:
        return ("error", err.key)


@pytest.mark.parametrize("name", list_templates())
def test_batched_tokenization_matches_one_at_a_time(name, demo_tokenizer, demo_examples):
    template, tokenizer = fitted(demo_tokenizer, name)
    for dataset, examples in demo_examples.items():
        for settings in SETTINGS:
            expected = _outcome(reference_sft, examples, template, tokenizer, **settings)
            assert _outcome(tokenize_sft, examples, template, tokenizer, batch_size=16, **settings) == expected, (
                dataset, settings)


def test_encode_texts_matches_encode_with_and_without_the_rust_shortcut(demo_tokenizer, monkeypatch):
    _, tokenizer = fitted(demo_tokenizer)
    texts = ["Hello there", "", "Hello there", "<|im_start|>user\nHi<|im_end|>", " leading space", "数字 123"]
    expected = [tokenizer.encode(t, add_special_tokens=False) if t else [] for t in texts]
    assert encode_module._rust_batch_encoder(tokenizer) is not None
    assert encode_module.encode_texts(tokenizer, texts) == expected
    monkeypatch.setattr(encode_module, "_rust_batch_encoder", lambda tokenizer: None)
    assert encode_module.encode_texts(tokenizer, texts) == expected


def test_the_rust_shortcut_steps_aside_when_settings_differ(demo_tokenizer):
    _, tokenizer = fitted(demo_tokenizer)
    tokenizer.split_special_tokens = True
    assert encode_module._rust_batch_encoder(tokenizer) is None
    texts = ["<|im_start|>user\nHi<|im_end|>"]
    assert encode_module.encode_texts(tokenizer, texts) == [tokenizer.encode(texts[0], add_special_tokens=False)]


@pytest.mark.parametrize("packing", [True, False])
def test_batched_pretraining_matches_one_at_a_time(packing, demo_tokenizer):
    _, tokenizer = fitted(demo_tokenizer)
    texts = [json.loads(line)["text"] for line in (ROOT / "data" / "c4_demo.jsonl").read_text().splitlines()[:60]]
    texts += texts[:5]  # repeats are encoded once, and still appear twice
    assert (tokenize_pt(texts, tokenizer, cutoff_len=128, packing=packing, batch_size=16)
            == reference_pt(texts, tokenizer, cutoff_len=128, packing=packing))


# --- columns ---


def test_columns_round_trip(tmp_path):
    rows = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [], "labels": []},
            {"input_ids": [9], "labels": [9]}]
    columns = TokenColumns.from_rows(rows)
    assert len(columns) == 3 and columns.num_tokens == 4 and columns.to_rows() == rows
    assert columns.row(-1) == rows[-1]
    columns.save(tmp_path / "split")
    loaded = TokenColumns.load(tmp_path / "split", ["input_ids", "labels"])
    assert loaded.to_rows() == rows
    dataset = TokenizedDataset(loaded)
    assert dataset[0] == rows[0] and isinstance(dataset[0]["input_ids"], list) and dataset.num_tokens == 4
    with pytest.raises(ValueError):
        TokenColumns.from_rows([{"input_ids": [1, 2], "labels": [1]}])
    with pytest.raises(IndexError):
        columns.row(3)
