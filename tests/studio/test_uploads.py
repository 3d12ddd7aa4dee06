"""Uploaded files are read in a child process, streaming and stopped at the row cap, and then removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import DataError, StudioError
from studio import uploads
from studio.datasets import detect_columns, register_upload

ROOT = Path(__file__).resolve().parents[2]
MILLION = 1_000_000


def million_rows(path: Path) -> Path:
    """A parquet file of a million identical rows: a few KB on disk, hundreds of MB once read into Python."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"instruction": pa.array(["q"] * MILLION), "output": pa.array(["a"] * MILLION)})
    pq.write_table(table, path, row_group_size=MILLION)
    assert path.stat().st_size < 64 * 1024
    return path


def test_a_compressed_upload_costs_the_studio_no_memory(tmp_path: Path) -> None:
    """Detecting columns and registering a million-row parquet leaves the studio's peak memory where it was,
    and the reading happens in child processes."""
    upload = million_rows(tmp_path / "big.parquet")
    script = textwrap.dedent(f"""
        import json, resource, subprocess
        from studio import datasets
        children = []
        real_run = subprocess.run
        def spy(*args, **kwargs):
            children.append(args[0])
            return real_run(*args, **kwargs)
        subprocess.run = spy
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        before = peak()
        columns = datasets.detect_columns({str(upload)!r})
        datasets.register_upload({str(upload)!r}, {str(tmp_path / "data")!r}, "big", "alpaca", {{}})
        print(json.dumps({{"grew_mb": peak() - before, "columns": columns, "children": len(children)}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["columns"] == ["instruction", "output"]
    assert result["grew_mb"] < 40, result
    assert result["children"] >= 2, result


def test_detection_stops_at_the_row_cap_and_refuses_more(tmp_path: Path) -> None:
    upload = million_rows(tmp_path / "big.parquet")
    with pytest.raises(StudioError) as err:
        detect_columns(upload, max_rows=500)
    assert err.value.key == "demo_upload_rows" and "500" in err.value.message()
    lines = tmp_path / "rows.jsonl"
    lines.write_text("".join(json.dumps({"q": f"{i}", "a": "x"}) + "\n" for i in range(20)), encoding="utf-8")
    assert detect_columns(lines, max_rows=20) == ["q", "a"]
    with pytest.raises(StudioError):
        detect_columns(lines, max_rows=19)
    # A bad line past the cap is never read.
    lines.write_text(lines.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    with pytest.raises(StudioError) as err:
        detect_columns(lines, max_rows=19)
    assert err.value.key == "demo_upload_rows"


def test_registration_checks_rows_in_a_child_with_the_same_messages(tmp_path: Path) -> None:
    upload = tmp_path / "bad.jsonl"
    upload.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q2", "output": ""}\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        register_upload(upload, tmp_path / "data", "bad", "alpaca", {})
    assert err.value.key == "dataset_bad_rows" and "row 1 (uploads/bad.jsonl:2)" in err.value.message()
    assert not (tmp_path / "data" / "uploads" / "bad.jsonl").exists()
    csv_file = tmp_path / "ragged.csv"
    csv_file.write_text("instruction,output\nq,a\nq2,a2,extra\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        detect_columns(csv_file)
    assert err.value.key == "dataset_csv_ragged" and err.value.params["line"] == 3
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"instruction": "q", "output": "a"}\n{"instruction": "caf\xe9"}\n')
    with pytest.raises(DataError) as err:
        detect_columns(latin)
    assert err.value.key == "dataset_file_not_utf8" and err.value.params["line"] == 2


def test_a_child_that_hangs_is_stopped_with_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    upload = tmp_path / "ok.jsonl"
    upload.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    monkeypatch.setattr(uploads, "INSPECT_TIMEOUT_S", 0.001)
    with pytest.raises(StudioError) as err:
        detect_columns(upload)
    assert err.value.key == "inspection_timeout"


# --- temporary files


def test_downloads_keep_no_zip_older_than_a_few_minutes(tmp_path: Path, studio_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile
    import time

    from studio.runs import DOWNLOAD_MAX_AGE_S
    from studio.tabs.train_runs import download_picked

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    run = studio_home / "saves" / "demo" / "lora" / "done"
    run.mkdir(parents=True)
    (run / "adapter_model.safetensors").write_bytes(b"weights")
    first = Path(download_picked([str(run)], "en")[1]["value"])
    assert first.is_file() and first.parent.parent == temp
    old = time.time() - DOWNLOAD_MAX_AGE_S - 5
    os.utime(first.parent, (old, old))
    stranger = temp / "studio-download-not-ours"
    stranger.symlink_to(tmp_path)  # a link placed in the temporary folder is never followed
    second = Path(download_picked([str(run)], "en")[1]["value"])
    assert second.is_file() and not first.parent.exists()
    assert stranger.is_symlink() and tmp_path.is_dir()
    assert sorted(p.name for p in temp.iterdir() if not p.is_symlink()) == [second.parent.name]


def test_a_registered_upload_is_deleted_from_gradios_upload_folder(tmp_path: Path, studio_home: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from studio.tabs.train_data import MAPPABLE, register

    cache = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    upload = cache / "0123abcd" / "mine.jsonl"
    upload.parent.mkdir(parents=True)
    upload.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    message, _ = register(str(upload), "mine", "alpaca", False, str(tmp_path / "data"), "en", *[""] * len(MAPPABLE))
    assert "❌" not in message
    assert (tmp_path / "data" / "uploads" / "mine.jsonl").is_file()
    assert not upload.exists() and not upload.parent.exists() and cache.is_dir()
    # A file given by path (not uploaded through the browser) is the user's own: kept.
    own = tmp_path / "own.jsonl"
    own.write_text('{"instruction": "q", "output": "a"}\n', encoding="utf-8")
    message, _ = register(str(own), "own", "alpaca", False, str(tmp_path / "data"), "en", *[""] * len(MAPPABLE))
    assert "❌" not in message
    assert own.is_file()
