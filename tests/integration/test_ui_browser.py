"""`mlw ui` over real runs, driven in headless Debian chromium by Playwright: the list and its
filters, a running execution followed live (a task turns green without a reload), a failed
attempt's logs and traceback, a comparison of two executions; no console errors. A screenshot
of each page goes to the test output folder (tests/integration/ui_support.output_dir)."""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
from pathlib import Path

import pytest
from playwright import sync_api as playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.ir import RetryPolicy, key_part  # noqa: E402
from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.runtime.state.sqlite import SQLiteState  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.integration.runtime_helpers import plan, task  # noqa: E402
from tests.integration.ui_support import FLAGS, output_dir, ui_server  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FN = "tests.integration.ui_tasks"
CHROMIUM = "/usr/bin/chromium"


def utask(id, fn, deps=(), **kw):
    t = task(id, "noop", deps, **kw)
    uses = f"{FN}:{fn}"
    return t.model_copy(update={"uses": uses, "key_part": key_part("custom", "1", uses, t.params, "")})


@pytest.fixture(scope="module")
def runs(tmp_path_factory, _dask_cluster_session):
    """Two finished executions of one workflow (one with a failed task) in a home."""
    tmp = tmp_path_factory.mktemp("ui")
    settings = Settings(home=str(tmp / "home"), scheduler=_dask_cluster_session.address)
    retry = RetryPolicy(attempts=2, backoff="fixed", initial=0.1, jitter=False)
    good = run_plan(plan(utask("prep", "chatty", tag="prep", lines=2),
                         utask("train", "chatty", ["prep"], tag="train", lines=3), id="wf"), settings)
    bad = run_plan(plan(utask("prep", "chatty", tag="prep", lines=5),
                        utask("train", "chatty", ["prep"], tag="train", fail_attempts=9, marker_dir=str(tmp),
                              retry=retry), id="wf"), settings, keep_going=True)
    assert good.status == "succeeded" and bad.status == "failed"
    return {"tmp": tmp, "settings": settings, "good": good, "bad": bad}


@pytest.fixture(scope="module")
def server(runs):
    with ui_server(runs["tmp"], "--home", runs["settings"].home) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A page that records console errors and uncaught exceptions; the test fails on any."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    yield pg
    context.close()
    assert not problems, problems


def test_the_list_filters_without_reloading(server, runs, page):
    page.goto(server.url + "/")
    rows = page.locator("tr.execution-row")
    assert rows.count() == 2
    assert rows.first.get_attribute("data-id") == runs["bad"].id  # newest first
    assert "2/2" in rows.first.inner_text()  # progress
    page.evaluate("window.__same_page = true")
    page.select_option("#filter-status", "failed")
    page.wait_for_function("document.querySelectorAll('tr.execution-row').length === 1")
    assert page.locator("tr.execution-row").get_attribute("data-id") == runs["bad"].id
    assert page.evaluate("window.__same_page") is True and "status=failed" in page.url
    page.screenshot(path=str(output_dir() / "executions.png"), full_page=True)


def test_a_failed_attempts_logs_and_traceback(server, runs, page):
    bad = runs["bad"]
    page.goto(f"{server.url}/executions/{bad.id}")
    assert page.locator("#dag g.node").count() == 2
    assert page.locator('#dag g.node[data-task="train"]').get_attribute("class") == "node status-failed"
    page.click('a.show-logs[data-task="train"]')
    page.wait_for_selector("#logs-panel .attempt-log")
    panel = page.locator("#logs-panel")
    assert panel.locator(".attempt-log").count() == 2  # both attempts
    text = panel.inner_text()
    assert "train stdout line 0" in text and "train logged a warning" in text
    assert "RuntimeError: train failed on purpose" in text  # the error and its traceback
    assert panel.locator("pre.traceback").count() == 2
    page.screenshot(path=str(output_dir() / "execution-failed.png"), full_page=True)


def test_compare_two_executions(server, runs, page):
    page.goto(server.url + "/")
    for e in (runs["good"], runs["bad"]):
        page.check(f'input.pick[value="{e.id}"]')
    page.click("#compare-selected")
    page.wait_for_selector("#compare-table")
    header = page.locator("#compare-table thead").inner_text()
    assert runs["good"].id[:8] in header and runs["bad"].id[:8] in header
    lines = page.locator('tr.metric-row[data-name="prep.lines"] td')
    assert [lines.nth(i).inner_text() for i in range(2)] == ["2", "5"]  # oldest first
    page.click('tr.metric-row[data-name="prep.lines"] a')
    page.wait_for_selector("#metric-chart svg")
    assert page.locator("#metric-chart circle.point").count() == 2
    page.screenshot(path=str(output_dir() / "compare.png"), full_page=True)


def test_a_running_task_turns_green_without_reloading(server, runs, page, tmp_path):
    settings, gate = runs["settings"], tmp_path / "gate"
    result = {}
    p = plan(utask("first", "chatty", tag="first"), utask("waits", "gated", ["first"], tag="waits", gate=str(gate)),
             id="live")
    runner = threading.Thread(target=lambda: result.update(ex=run_plan(p, settings)))
    runner.start()
    try:
        state = SQLiteState(Path(settings.home) / "state.db")
        deadline = time.time() + 60
        live = None
        while time.time() < deadline:
            live = next((e for e in state.list_executions(limit=5, workflow_id="live")), None)
            if live and state.task_statuses(live.id)[1].get("waits", ("",))[0] == "running":
                break
            time.sleep(0.1)
        assert live is not None, "the run did not start"
        page.goto(f"{server.url}/executions/{live.id}")
        page.evaluate("window.__same_page = true")
        node = page.locator('#dag g.node[data-task="waits"]')
        assert node.get_attribute("class") == "node status-running"
        page.click('a.show-logs[data-task="waits"]')  # its log follows while it runs
        page.wait_for_selector('#logs-panel .logs[data-running="yes"]')
        page.wait_for_function("document.querySelector('#logs-panel').innerText.includes('waits waiting for its gate')",
                               timeout=10_000)
        page.screenshot(path=str(output_dir() / "execution-running.png"), full_page=True)
        gate.write_text("go")
        opened = time.monotonic()
        page.wait_for_function(
            "document.querySelector('#dag g.node[data-task=\"waits\"]').getAttribute('class') === 'node status-succeeded'",
            timeout=15_000)
        turned = time.monotonic() - opened
        assert turned < 5, f"the node turned green {turned:.1f}s after the task could finish"
        row = page.locator('tr.task-row[data-task="waits"] .task-status')
        assert row.inner_text() == "succeeded"
        page.wait_for_function("document.getElementById('execution-status').textContent === 'succeeded'")
        page.wait_for_function("document.querySelector('#logs-panel').innerText.includes('waits passed its gate')",
                               timeout=10_000)
        assert page.evaluate("window.__same_page") is True  # no reload happened
        assert node.locator("rect").get_attribute("fill") == "#2e9d5b"
        print(f"green {turned:.2f}s after the gate opened")
        page.screenshot(path=str(output_dir() / "execution-live.png"), full_page=True)
    finally:
        gate.write_text("go")
        runner.join(60)
    assert result["ex"].status == "succeeded"


def test_pages_studies_models_and_the_api(server, runs, page):
    for path, marker in (("/studies", "#studies"), ("/models", "#deployments")):
        page.goto(server.url + path)
        page.wait_for_selector(marker)
    api = server.get_json("/api/executions?status=failed")
    assert [e["id"] for e in api["items"]] == [runs["bad"].id] and api["total"] == 1
    one = server.get_json(f"/api/executions/{runs['bad'].id[:10]}")
    assert one["edges"] == [["prep", "train"]] and one["progress"]["counts"] == {"failed": 1, "succeeded": 1}
    logs = server.get_json(f"/api/executions/{runs['bad'].id}/logs?task=train&attempt=2")
    assert [g["attempt"] for g in logs["logs"]] == [2] and len(logs["errors"]) == 2
    assert "/api/executions" in " ".join(server.get_json("/api/")["endpoints"])
    with pytest.raises(urllib.error.HTTPError) as missing:
        server.get_text("/executions/nope-nope")
    assert missing.value.code == 404 and "no execution &#39;nope-nope&#39;" in missing.value.read().decode()
