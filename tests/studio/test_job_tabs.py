"""Start buttons of the Train, Evaluate and Export tabs: a refusal never stops the page following its run."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import StudioError
from studio.tabs.monitor import launch_job


def _refused(*values: object) -> tuple[dict, Path]:
    raise StudioError("run_already_live", path="saves/demo/lora/busy")


@pytest.mark.filterwarnings("ignore::UserWarning")  # gr.Warning outside a request warns instead of toasting
def test_a_refused_start_leaves_the_followed_run_and_its_timer_alone():
    message, status, run_dir, timer = launch_job("train", _refused, "train.msg.starting", "en", ())
    assert message.startswith("❌") and "already going on" in message
    # Updates that change nothing: the status, the run folder and the polling of a live run stay as they were.
    for update in (status, run_dir, timer):
        assert isinstance(update, dict) and set(update) <= {"__type__"}, update
