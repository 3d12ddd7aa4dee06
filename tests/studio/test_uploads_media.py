"""Uploads with images and audio: a zip (or files side by side) holding a table and its media is unpacked safely,
each file the table names is placed where its path points, and every refusal names what to fix."""

from __future__ import annotations

import io
import json
import math
import struct
import wave
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from engine.data import load_registry
from engine.errors import DataError
from studio.uploads import UnpackLimits, register_media_upload, unpack_upload

COLUMNS = {"messages": "messages", "images": "images", "audios": "audios"}


def png(colour: tuple[int, int, int] = (20, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(out, "PNG")
    return out.getvalue()


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(6000 * math.sin(i / 3))) for i in range(1600)))
    return out.getvalue()


def rows(*images: str) -> bytes:
    """openai-format rows, one per image, the second with a sound too."""
    out = []
    for i, image in enumerate(images):
        text = "<image>What is this?" + ("<audio>And this?" if i == 1 else "")
        row = {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "A thing."}],
               "images": [image]}
        if i == 1:
            row["audios"] = ["sounds/tone.wav"]
        out.append(row)
    return json.dumps(out).encode()


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def good_zip(tmp_path: Path) -> Path:
    """A dataset folder zipped from above: the table and its media under `pets/`, plus a Mac's junk."""
    return make_zip(tmp_path / "pets.zip", {
        "pets/train.json": rows("images/cat.png", "images/dog.png"),
        "pets/images/cat.png": png(), "pets/images/dog.png": png((200, 90, 10)), "pets/sounds/tone.wav": wav(),
        "__MACOSX/pets/._train.json": b"junk",
    })


def register(paths: list[Path], data: Path, name: str = "pets", **kwargs) -> dict:
    return register_media_upload([str(p) for p in paths], data, name, "openai", COLUMNS, **kwargs)


def test_a_zip_registers_with_its_media_where_the_table_points(tmp_path: Path) -> None:
    from studio.data_preview import collect, media_html

    data = tmp_path / "data"
    entry = register([good_zip(tmp_path)], data)
    assert entry["file_name"] == "uploads/pets.json" and entry["columns"]["images"] == "images"
    assert load_registry(data)["pets"] == entry
    assert (data / "images" / "cat.png").read_bytes() == png()
    assert (data / "sounds" / "tone.wav").is_file()
    assert not list((data / "uploads").glob(".unpack-*"))  # the unpacked copy is gone
    assert not (data / "__MACOSX").exists()
    page = media_html(collect(str(data), "pets", None, None, 64, 0, False, False, {})["media"], "en")
    assert page.count("data:image/jpeg;base64,") == 2 and "<audio controls" in page and "⚠" not in page
    # The same media again (a second dataset from the same folder) is kept, not refused.
    register([good_zip(tmp_path)], data, name="pets_again")


def test_files_chosen_side_by_side_keep_their_names(tmp_path: Path) -> None:
    table = tmp_path / "train.json"
    table.write_bytes(rows("cat.png", "cat.png").replace(b"sounds/tone.wav", b"tone.wav"))
    (tmp_path / "cat.png").write_bytes(png())
    (tmp_path / "tone.wav").write_bytes(wav())
    data = tmp_path / "data"
    register([table, tmp_path / "cat.png", tmp_path / "tone.wav"], data, name="flat")
    assert (data / "cat.png").is_file() and (data / "tone.wav").is_file()


@pytest.mark.parametrize("entry", ["../evil.png", "/tmp/evil.png", "pets/../../evil.png", "C:/evil.png"])
def test_a_zip_whose_paths_leave_the_archive_is_refused_before_anything_is_written(tmp_path: Path,
                                                                                    entry: str) -> None:
    upload = make_zip(tmp_path / "bad.zip", {"train.json": rows("a.png"), entry: png()})
    data = tmp_path / "data"
    with pytest.raises(DataError) as err:
        register([upload], data)
    assert err.value.key == "upload_zip_unsafe" and entry in err.value.message()
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()
    assert not (data / "dataset_info.json").exists() and not list((data / "uploads").iterdir())


def test_an_upload_over_the_size_or_file_count_is_refused(tmp_path: Path) -> None:
    upload = good_zip(tmp_path)
    with pytest.raises(DataError) as err:
        register([upload], tmp_path / "data", limits=UnpackLimits(max_mb=0.001))
    assert err.value.key == "upload_too_big" and "0.001 MB" in err.value.message()
    with pytest.raises(DataError) as err:
        register([upload], tmp_path / "data", limits=UnpackLimits(max_files=3))
    assert err.value.key == "upload_too_many_files" and "4 files" in err.value.message()
    assert not (tmp_path / "data" / "images").exists()


def test_a_file_the_table_names_but_the_upload_lacks_is_named_with_its_row(tmp_path: Path) -> None:
    upload = make_zip(tmp_path / "pets.zip", {"train.json": rows("images/cat.png", "images/gone.png"),
                                              "images/cat.png": png(), "sounds/tone.wav": wav()})
    data = tmp_path / "data"
    with pytest.raises(DataError) as err:
        register([upload], data)
    message = err.value.message()
    assert err.value.key == "upload_media_missing" and "'images/gone.png' (images)" in message
    assert "Row 1 " in message and "0 other file(s)" in message
    assert not (data / "images").exists() and not (data / "dataset_info.json").exists()


def test_what_is_not_a_table_and_media_is_refused_by_name(tmp_path: Path) -> None:
    cases = {
        "upload_no_table": {"images/cat.png": png()},
        "upload_many_tables": {"train.json": rows("a.png"), "test.json": rows("a.png"), "a.png": png()},
        "upload_file_type": {"train.json": rows("a.png"), "a.png": png(), "run.sh": b"rm -rf /"},
    }
    for key, files in cases.items():
        with pytest.raises(DataError) as err:
            unpack_upload([str(make_zip(tmp_path / f"{key}.zip", files))], tmp_path / key, UnpackLimits())
        assert err.value.key == key
    assert "train.json, test.json" in err_message(tmp_path, cases["upload_many_tables"])
    # A table deeper down is a helper file: the one nearest the top is the dataset.
    nested = make_zip(tmp_path / "nested.zip", {"train.json": rows("a.png"), "extra/notes.json": b"[]",
                                                "a.png": png()})
    assert unpack_upload([str(nested)], tmp_path / "nested", UnpackLimits()).name == "train.json"
    (tmp_path / "broken.zip").write_bytes(b"PK not really a zip")
    with pytest.raises(DataError) as err:
        unpack_upload([str(tmp_path / "broken.zip")], tmp_path / "broken", UnpackLimits())
    assert err.value.key == "upload_zip_bad" and "broken.zip" in err.value.message()
    # A member whose bytes do not match its checksum is refused by name, not with a traceback.
    corrupt = bytearray(make_zip(tmp_path / "crc.zip", {"train.json": rows("a.png"), "a.png": png()}).read_bytes())
    offset = corrupt.index(png()[:8])
    corrupt[offset + 40] ^= 0xFF
    (tmp_path / "crc.zip").write_bytes(bytes(corrupt))
    with pytest.raises(DataError) as err:
        unpack_upload([str(tmp_path / "crc.zip")], tmp_path / "crc", UnpackLimits())
    assert err.value.key == "upload_zip_bad" and "a.png" in err.value.message()


def err_message(tmp_path: Path, files: dict[str, bytes]) -> str:
    with pytest.raises(DataError) as err:
        unpack_upload([str(make_zip(tmp_path / "again.zip", files))], tmp_path / "again", UnpackLimits())
    return err.value.message()


def test_media_already_in_the_folder_with_other_content_is_never_overwritten(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "dog.png").write_bytes(png((1, 2, 3)))
    with pytest.raises(DataError) as err:
        register([good_zip(tmp_path)], data)
    assert err.value.key == "upload_media_taken" and "images/dog.png" in err.value.message()
    assert (data / "images" / "dog.png").read_bytes() == png((1, 2, 3))
    assert not (data / "images" / "cat.png").exists()  # placed before the refusal, then taken back


def test_the_upload_form_takes_a_zip_and_shows_the_media(tmp_path: Path, studio_home: Path) -> None:
    from studio.tabs import train_data

    upload = good_zip(tmp_path)
    *mapping, message = train_data.on_file([str(upload)], "openai", "en")
    assert "Columns found: messages, images, audios" in message
    chosen = {column: update["value"] for column, update in zip(train_data.MAPPABLE, mapping, strict=True)}
    assert chosen["messages"] == "messages" and chosen["images"] == "images" and chosen["audios"] == "audios"
    data = tmp_path / "data"
    message, shown = train_data.register([str(upload)], "pets", "openai", False, str(data), "en",
                                         *[chosen[column] for column in train_data.MAPPABLE])
    assert "✅" in message and "media-card" in shown and "data:image/jpeg;base64," in shown
    message, _ = train_data.register([str(make_zip(tmp_path / "bad.zip", {"../x.json": b"[]"}))], "bad", "openai",
                                     False, str(data), "en", *[chosen[column] for column in train_data.MAPPABLE])
    assert message.startswith("❌") and "x.json" in message


def test_the_public_demo_unpacks_less() -> None:
    from studio.demo_settings import DemoSettings
    from studio.uploads import unpack_limits

    demo = unpack_limits(DemoSettings(max_upload_mb=5.0))
    assert (demo.max_mb, demo.max_files) == (20.0, 200)
    assert demo.max_mb < UnpackLimits().max_mb and demo.max_files < UnpackLimits().max_files
