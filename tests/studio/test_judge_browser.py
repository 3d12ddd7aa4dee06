"""Judge a run's predictions from the Evaluate & Predict tab in Chromium: pick the run, type the endpoint and the
model, start, and read mean ± spread and the rows table."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from tests.engine.test_judge import SCORES, FixedJudge
from tests.studio.conftest import shot
from tests.studio.test_browser import open_group, open_studio, set_text

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class OpenJudge(FixedJudge):
    """The fixed-score endpoint without a key: the studio under test was started without one."""

    def _authorized(self) -> bool:
        return True


@pytest.fixture()
def open_judge() -> Iterator[str]:
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenJudge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_group_scores_a_runs_predictions(page, studio_server, open_judge):
    run = studio_server["home"] / "saves" / "demo" / "lora" / "eval_judge_me"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model_name_or_path: demo\nfinetuning_type: lora\ndo_predict: true\n")
    rows = [{"prompt": f"q{i}", "predict": f"answer {s}", "label": "ref"} for i, s in enumerate(SCORES)]
    (run / "generated_predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    open_studio(page, studio_server["url"])
    page.get_by_role("tab", name="Evaluate & Predict").click()
    open_group(page, "Judge the predictions (LLM as judge)")
    page.locator("#judge_run input").click()
    page.get_by_role("option", name="demo/lora/eval_judge_me").click()
    set_text(page, "judge_base_url", open_judge)
    set_text(page, "judge_model", "fixed")
    page.get_by_role("button", name="Start judging").click()
    page.locator("#judge_summary").get_by_text("Mean 5").wait_for(timeout=120_000)
    shot(page, "judge-finished")
    assert "8 rows scored, 0 without a readable score" in page.locator("#judge_summary").inner_text()
    assert page.locator("#judge_rows").get_by_text("fixed.").count() >= 1
    judged = sorted(run.glob("judge_*/judge_results.json"))
    assert judged and json.loads(judged[-1].read_text())["mean"] == 5
