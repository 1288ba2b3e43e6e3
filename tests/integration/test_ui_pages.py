"""`mlw ui` pages over records written straight to a SQLite home (no cluster needed): the list's
pages and filters, a study's trials, history and importances, models with lineage and alias
history, escaping of user data, errors for unknown or ambiguous ids."""

from __future__ import annotations

import sys
import time
import urllib.error
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mlflowdsl.runtime.records import AttemptError, TaskResult, WorkflowExecution  # noqa: E402
from mlflowdsl.runtime.registry import open_registry  # noqa: E402
from mlflowdsl.runtime.state.sqlite import SQLiteState  # noqa: E402
from mlflowdsl.settings import Settings  # noqa: E402
from tests.integration.ui_support import ui_server  # noqa: E402

pytestmark = pytest.mark.integration

STUDY = {"study": "s1", "metric": "accuracy", "direction": "maximize", "sampler": "tpe", "pruner": "median",
         "best_value": 0.9, "best_params": {"depth": 5}, "best_trial": 2, "counts": {"complete": 3},
         "importances": {"depth": 0.75, "lr": 0.25},
         "trials": [{"number": 0, "state": "complete", "value": 0.7, "params": {"depth": 2}},
                    {"number": 1, "state": "pruned", "value": None, "params": {"depth": 3}},
                    {"number": 2, "state": "complete", "value": 0.9, "params": {"depth": 5}}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-pages")
    home = tmp / "home"
    state = SQLiteState(home / "state.db")
    now = time.time() - 1000
    for i in range(60):
        status = "failed" if i % 3 == 0 else "succeeded"
        tasks = {"a": TaskResult(task_id="a", status="succeeded", attempts=1),
                 "b": TaskResult(task_id="b", status=status, attempts=1)}
        state.save(WorkflowExecution(id=f"e{i:03d}-x", workflow_id=f"wf{i % 2}", status=status, created=now + i,
                                     tasks=tasks))
    tuned = {"tune<1>": TaskResult(task_id="tune<1>", status="succeeded", study=STUDY, attempts=1,
                                   attempt_errors=[AttemptError(attempt=1, type="X", message="<b>bold</b>")])}
    state.save(WorkflowExecution(id="tuned-1", workflow_id="wf<script>", status="succeeded", created=now + 100,
                                 tasks=tuned))
    state.close()
    settings = Settings(home=str(home))
    registry = open_registry(settings)
    registry.register("clf", {"w": 1}, model_type="classification", metrics={"accuracy": 0.9},
                      lineage={"execution_id": "tuned-1", "task_id": "tune<1>"})
    registry.promote("clf/1", "champion", by="test")
    registry.close()
    with ui_server(tmp, "--home", str(home)) as srv:
        yield srv


def test_list_pages_newest_first_and_filters(server):
    first = server.get_json("/api/executions")
    assert first["total"] == 61 and first["pages"] == 2 and len(first["items"]) == 50
    assert first["items"][0]["id"] == "tuned-1" and first["items"][1]["id"] == "e059-x"
    second = server.get_json("/api/executions?page=2")
    assert [e["id"] for e in second["items"]] == [f"e{i:03d}-x" for i in range(10, -1, -1)]
    failed = server.get_json("/api/executions?workflow=wf0&status=failed&per_page=100")
    assert failed["total"] == 10 and {e["workflow_id"] for e in failed["items"]} == {"wf0"}
    assert failed["items"][0]["progress"] == {"total": 2, "done": 2, "percent": 100,
                                              "counts": {"failed": 1, "succeeded": 1}}
    html = server.get_text("/?page=2")
    assert html.count('class="execution-row"') == 11 and 'id="page-prev"' in html and 'id="page-next"' not in html


def test_a_study_page_has_trials_history_and_importances(server):
    info = server.get_json("/api/studies")
    assert [(s["execution_id"], s["task_id"], s["best_value"]) for s in info["items"]] == [("tuned-1", "tune<1>", 0.9)]
    study = server.get_json("/api/studies/tuned-1/tune%3C1%3E")
    assert [h["best"] for h in study["history"]] == [0.7, 0.7, 0.9]
    assert study["importances"][0] == {"param": "depth", "importance": 0.75}
    html = server.get_text("/studies/tuned-1/tune%3C1%3E")
    assert html.count('class="trial-row"') == 3 and 'polyline class="best"' in html
    assert html.count('<rect class="bar"') == 2


def test_models_show_lineage_and_alias_history(server):
    model = server.get_json("/api/models")["models"][0]
    assert model["aliases"] == {"champion": 1} and model["versions"][0]["execution_id"] == "tuned-1"
    assert [(h["alias"], h["version"], h["by"]) for h in model["history"]] == [("champion", 1, "test")]
    html = server.get_text("/models")
    assert 'href="/executions/tuned-1"' in html and "champion → 1" in html


def test_user_data_is_escaped_and_bad_ids_are_errors(server):
    html = server.get_text("/executions/tuned-1")
    assert "wf&lt;script&gt;" in html and "wf<script>" not in html and "tune&lt;1&gt;" in html
    logs = server.get_text("/executions/tuned-1/tasks/tune%3C1%3E/logs")
    assert "&lt;b&gt;bold&lt;/b&gt;" in logs and "<b>bold" not in logs
    for path, code, text in (("/api/executions/nope", 404, "no execution 'nope'"),
                             ("/api/executions/e0", 400, "ambiguous"),
                             ("/api/studies/e001-x/a", 404, "has no study")):
        with pytest.raises(urllib.error.HTTPError) as err:
            server.get_json(path)
        assert err.value.code == code and text in err.value.read().decode()
