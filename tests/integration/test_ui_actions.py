"""The actions of `mlw ui` (docs/ui.md "Actions") against a real server: read-only by default,
the token of --allow-actions, cross-origin refusal, a gated alias move (allowed, then refused by
the gate), resume of a failed execution (it then succeeds), cancel refused in embedded mode."""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.ir import key_part  # noqa: E402
from mlflowdsl.runtime.api import run_plan  # noqa: E402
from mlflowdsl.runtime.registry import open_registry  # noqa: E402
from mlflowdsl.runtime.state.sqlite import SQLiteState  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.conftest import wait_until  # noqa: E402
from tests.integration.runtime_helpers import plan, task  # noqa: E402
from tests.integration.ui_support import ui_server  # noqa: E402

pytestmark = pytest.mark.integration
FN = "tests.integration.ui_tasks"


def utask(id, fn, deps=(), **kw):
    t = task(id, "noop", deps, **kw)
    uses = f"{FN}:{fn}"
    return t.model_copy(update={"uses": uses, "key_part": key_part("custom", "1", uses, t.params, "")})


def post(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
    body = urllib.parse.urlencode(data or {}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def home(tmp_path, dask_cluster):
    """A home with a failed execution (its task fails once, so a resume succeeds) and a model of
    two versions, the second worse than the first."""
    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address)
    failed = run_plan(plan(utask("flaky", "chatty", tag="flaky", fail_attempts=1, marker_dir=str(tmp_path)),
                           id="act"), settings)
    assert failed.status == "failed"
    registry = open_registry(settings)
    for accuracy in (0.9, 0.8):
        registry.register("clf", {"weights": [accuracy]}, model_type="classification", metrics={"accuracy": accuracy})
    registry.close()
    return settings, failed


def test_read_only_by_default(home, tmp_path):
    settings, failed = home
    with ui_server(tmp_path, "--home", settings.home) as srv:
        status, body = post(f"{srv.url}/api/executions/{failed.id}/resume")
        assert status == 403 and "read-only" in body and "--allow-actions" in body
        assert 'id="action-resume"' not in srv.get_text(f"/executions/{failed.id}")  # no buttons either


def test_actions_need_the_token_and_go_through_the_gate(home, tmp_path, dask_cluster):
    settings, failed = home
    with ui_server(tmp_path, "--home", settings.home, "--scheduler", dask_cluster.address, "--allow-actions") as srv:
        wait_until(lambda: "token=" in srv.log.read_text(), timeout=30, what="the token line", log=srv.log)
        token = re.search(r"\?token=(\S+)", srv.log.read_text()).group(1)
        auth = {"X-MLW-Token": token}
        promote = f"{srv.url}/api/models/clf/aliases/champion"

        assert post(promote, {"version": 1})[0] == 403  # no token
        assert post(promote, {"version": 1}, {"X-MLW-Token": "wrong"})[0] == 403
        status, body = post(promote, {"version": 1}, {**auth, "Origin": "http://elsewhere.example"})
        assert status == 403 and "cross-origin" in body

        status, body = post(promote, {"version": 1}, auth)
        assert status == 200, body
        status, body = post(promote, {"version": 2}, auth)  # worse than the champion: refused
        assert status == 409 and "accuracy" in body
        registry = open_registry(settings)
        assert registry.aliases("clf") == {"champion": 1}
        registry.close()
        models = srv.get_json("/api/models")["models"][0]
        assert [h["version"] for h in models["history"]] == [1] and models["history"][0]["by"] == "mlw ui"

        status, body = post(f"{srv.url}/api/executions/{failed.id}/cancel", headers=auth)
        assert status == 403 and "cluster" in body  # an embedded run is stopped where it runs

        status, body = post(f"{srv.url}/api/executions/{failed.id}/resume", headers=auth)
        assert status == 200, body
        state = SQLiteState(Path(settings.home) / "state.db")
        wait_until(lambda: state.get_execution(failed.id).status == "succeeded", timeout=90,
                   what="the resumed execution", log=Path(settings.home) / f"ui-resume-{failed.id}.log")
        assert srv.get_json(f"/api/executions/{failed.id}/status")["tasks"]["flaky"]["status"] == "succeeded"
        status, body = post(f"{srv.url}/api/executions/{failed.id}/resume", headers=auth)
        assert status == 403 and "only a failed or cancelled execution resumes" in body


def test_cluster_mode_reads_the_redis_state(tmp_path, dask_cluster, redis_url, monkeypatch):
    from mlflowdsl.runtime.coordination.config import gateway_from_settings
    from mlflowdsl.runtime.state.redis import RedisState

    settings = Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, redis_url=redis_url,
                        key_prefix="ui-cluster")
    state = RedisState(gateway_from_settings(settings))
    ex = run_plan(plan(utask("a", "chatty", tag="a"), utask("b", "chatty", ["a"], tag="b", lines=2), id="cl"),
                  settings, state=state)
    assert ex.status == "succeeded"
    monkeypatch.setenv("MLW_KEY_PREFIX", "ui-cluster")  # the server inherits it
    with ui_server(tmp_path, "--redis", redis_url) as srv:
        listing = srv.get_json("/api/executions?workflow=cl")
        assert [e["id"] for e in listing["items"]] == [ex.id]
        assert listing["items"][0]["progress"]["done"] == 2
        assert srv.get_json(f"/api/executions/{ex.id}/status")["tasks"]["b"]["status"] == "succeeded"
        logs = srv.get_json(f"/api/executions/{ex.id}/logs?task=b")
        assert "b stdout line 1" in logs["logs"][0]["text"]
        page = srv.get_text(f"/executions/{ex.id}")
        assert page.count('class="task-row"') == 2 and "cluster · read-only" in page
        status, body = post(f"{srv.url}/api/executions/{ex.id}/cancel")
        assert status == 403  # read-only


@pytest.mark.slow
def test_cancel_from_the_ui_stops_a_cluster_execution(tmp_path, redis_url, dask_cluster):
    from tests.integration.cluster_support import Cluster, chain_workflow
    from tests.integration.tasks_for_tests import runs

    cluster = Cluster(tmp_path, redis_url, dask_cluster.address)
    try:
        logs, wf = tmp_path / "logs", tmp_path / "wf.mlw"
        wf.write_text(chain_workflow(20, logs=logs, seconds=1.0))
        cluster.start("solo")
        execution_id = cluster.submit(wf)
        with ui_server(tmp_path, "--redis", redis_url, "--allow-actions") as srv:
            wait_until(lambda: "token=" in srv.log.read_text(), timeout=30, what="the token line", log=srv.log)
            token = re.search(r"\?token=(\S+)", srv.log.read_text()).group(1)
            wait_until(lambda: runs(str(logs), "t01"), timeout=60, what="the execution's second task")
            status, body = post(f"{srv.url}/api/executions/{execution_id}/cancel", headers={"X-MLW-Token": token})
            assert status == 200 and "cancel" in body, body
            final = cluster.wait_status(execution_id, ("cancelled", "succeeded", "failed"), timeout=30)
            assert final["status"] == "cancelled" and final["tasks"]["t19"]["status"] == "skipped"
            assert srv.get_json(f"/api/executions/{execution_id}/status")["status"] == "cancelled"
    finally:
        cluster.close()
