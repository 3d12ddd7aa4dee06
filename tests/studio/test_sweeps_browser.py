"""In Chromium: the Sweep group counts the runs of a spec as it is typed (and says which line is wrong), and All
runs compares a sweep's runs, found from their folders, with the best one starred."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from engine.runfolder import write_status
from tests.studio.conftest import shot, start_studio, stop
from tests.studio.test_browser import open_group, open_studio

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_typing_a_spec_shows_how_many_runs_it_makes(page, studio_server):
    from playwright.sync_api import expect

    open_studio(page, studio_server["url"])
    page.get_by_role("button", name=re.compile(r"^Sweep")).first.click()  # the group's header, not Start sweep
    box = page.locator("#sweep_spec textarea").first
    box.fill("learning_rate: 1e-4, 5e-5")
    expect(page.locator("#sweep_count")).to_contain_text("2 runs")
    box.press("End")
    box.press_sequentially("\nlora_rank: 8, 16")
    expect(page.locator("#sweep_count")).to_contain_text("4 runs")
    shot(page, "sweep-count")
    box.fill("learning_rate: 1e-4\nlora_rank: 8, big")
    expect(page.locator("#sweep_count")).to_contain_text("line 2")
    expect(page.locator("#sweep_count")).to_contain_text("big")
    box.fill("lora_rank: " + ", ".join(str(rank) for rank in range(1, 41)))
    expect(page.locator("#sweep_count")).to_contain_text("40 runs, more than the limit of 32")


@pytest.fixture(scope="module")
def sweep_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A studio whose saves/ holds a finished sweep of two runs (made by hand, as the engine leaves them)."""
    home = tmp_path_factory.mktemp("sweep_home")
    for name, rank, losses in (("tune-r8", 8, (2.0, 1.4, 1.1)), ("tune-r16", 16, (2.0, 1.2, 0.9))):
        run_dir = home / "saves" / "demo" / "lora" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(f"model_name_or_path: demo\nfinetuning_type: lora\nlora_rank: {rank}\n")
        (run_dir / "sweep.json").write_text(json.dumps({"sweep": "tune", "values": {"lora_rank": rank}}))
        (run_dir / "trainer_log.jsonl").write_text("".join(
            json.dumps({"current_steps": step, "total_steps": 3, "loss": loss, "elapsed_time": f"0:00:0{step}",
                        "throughput": 500.0}) + "\n" for step, loss in enumerate(losses, start=1)))
        write_status(run_dir, "finished", pid=1, exit_code=0)
    proc, url = start_studio(home)
    yield {"url": url, "home": home}
    stop(proc)


def test_all_runs_compares_a_sweep_and_stars_the_best(page, sweep_studio):
    from playwright.sync_api import expect

    open_studio(page, sweep_studio["url"])
    open_group(page, "All runs")
    page.locator("#sweep_pick input").first.click()
    page.get_by_role("option", name="tune").click()
    table = page.locator("#sweep_table")
    expect(table).to_contain_text("tune-r16")
    expect(table).to_contain_text("lora_rank=8")
    expect(page.locator("#sweep_message")).to_contain_text("Best run: tune-r16")
    # The grid's cells come one a line, row after row: the star is the first cell of the best run's row only.
    cells = table.inner_text().split("Tokens/s", 1)[1]
    assert cells.count("★") == 1 and re.search(r"★\s*tune-r16\s", cells), cells
    page.locator("#sweep_plot svg").first.wait_for()
    page.locator("#sweep_table").scroll_into_view_if_needed()
    shot(page, "sweep-compare")


def test_start_sweep_queues_one_run_per_value_and_compares_them(page, sweep_studio):
    from playwright.sync_api import expect

    from tests.studio.test_browser import server_has, set_number

    home = sweep_studio["home"]
    open_studio(page, sweep_studio["url"])
    open_group(page, "More settings")
    set_number(page, "max_steps", "2")
    set_number(page, "logging_steps", "1")
    page.locator("#run_name textarea, #run_name input").first.fill("clicked")
    server_has(page, max_steps=2, logging_steps=1)
    page.get_by_role("button", name=re.compile(r"^Sweep")).first.click()
    page.locator("#sweep_spec textarea").first.fill("learning_rate: 1e-3, 1e-4")
    expect(page.locator("#sweep_count")).to_contain_text("2 runs")
    page.get_by_role("button", name="Start sweep").click()
    expect(page.locator("#start_message")).to_contain_text("Queued 2 runs of the sweep clicked", timeout=120_000)
    runs = [home / "saves" / "demo" / "lora" / name for name in ("clicked-lr0.001", "clicked-lr1e-4")]
    assert all(json.loads((run / "sweep.json").read_text())["sweep"] == "clicked" for run in runs)
    deadline = time.monotonic() + 300  # the first run builds the offline demo model
    while not all((run / "status.json").is_file() and json.loads((run / "status.json").read_text())["state"]
                  in ("finished", "failed", "aborted") for run in runs):
        assert time.monotonic() < deadline, [p.name for run in runs for p in run.iterdir()]
        time.sleep(1)
    assert [json.loads((run / "status.json").read_text())["state"] for run in runs] == ["finished", "finished"]
    open_group(page, "All runs")
    page.locator("#sweep_pick input").first.click()
    page.get_by_role("option", name="clicked").click()
    expect(page.locator("#sweep_table")).to_contain_text("learning_rate=1e-4")
    expect(page.locator("#sweep_message")).to_contain_text("Best run: clicked-lr")
    page.locator("#sweep_plot svg").first.wait_for()
    shot(page, "sweep-started-and-compared")
