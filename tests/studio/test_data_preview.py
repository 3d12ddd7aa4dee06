"""*Look at the data* reads the dataset in a child process, never in the studio's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.paths import resource_dir
from studio.tabs.train_data import preview


def test_the_preview_is_read_in_a_child_process(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch):
    import engine.data
    import studio.datasets

    def read_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the studio process read the dataset")

    for module in (engine.data, studio.datasets):
        monkeypatch.setattr(module, "read_rows", read_here)
    rows, rendered, summary, histogram = preview(str(resource_dir("data")), ["identity"], str(tiny_model_dir),
                                                 "chatml", 64, 2, False, False, "Studio", "Team", "en")
    assert len(rows) == 5 and "token-preview" in rendered and "<" not in summary
    assert int(histogram["count"].sum()) > 0


def test_a_preview_that_cannot_read_says_why(tiny_model_dir: Path):
    rows, rendered, _, _ = preview(str(resource_dir("data")), ["no_such_set"], str(tiny_model_dir), "chatml", 64, 0,
                                   False, False, "", "", "en")
    assert rows is None and "❌" in rendered and "no_such_set" in rendered
