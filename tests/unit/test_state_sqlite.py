import multiprocessing
import time

import pytest

from mlflowdsl.errors import StateError
from mlflowdsl.runtime.records import AttemptError, TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.sqlite import SQLiteState


def _execution(eid="e1", created=None, **kw):
    return WorkflowExecution(id=eid, workflow_id="wf", plan_json='{"p": 1}', created=created or time.time(), **kw)


def test_round_trip_with_task_results(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    ex = _execution(status="running", params={"lr": 0.1})
    err = AttemptError(attempt=1, type="ValueError", message="boom", traceback="Traceback...")
    ex = ex.with_tasks({
        "a": TaskResult(task_id="a", status="succeeded", attempts=2, attempt_errors=[err], metrics={"acc": 0.9}),
        "b": TaskResult(task_id="b", status="pending"),
    })
    state.save(ex)
    got = SQLiteState(tmp_path / "state.db").get_execution("e1")
    assert got == ex
    assert got.tasks["a"].attempt_errors[0].message == "boom"


def test_updates_replace_rows_and_keep_the_plan(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    ex = _execution(status="running")
    state.save(ex.with_tasks({"a": TaskResult(task_id="a", status="running")}))
    later = ex.advance("succeeded").model_copy(update={"plan_json": ""})
    state.save_execution(later)
    state.save_task_results("e1", [TaskResult(task_id="a", status="succeeded")])
    got = state.get_execution("e1")
    assert got.status == "succeeded"
    assert got.plan_json == '{"p": 1}'  # an empty plan in an update keeps the stored one
    assert got.tasks["a"].status == "succeeded"


def test_unknown_and_prefix_ids(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    state.save(_execution("abc123"))
    state.save(_execution("abd456"))
    assert state.get_execution("abc").id == "abc123"
    with pytest.raises(StateError, match="ambiguous"):
        state.get_execution("ab")
    with pytest.raises(StateError, match="no execution"):
        state.get_execution("zzz")


def test_list_is_newest_first_without_tasks(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    for i in range(3):
        state.save(_execution(f"e{i}", created=1000.0 + i).with_tasks({"a": TaskResult(task_id="a")}))
    listed = state.list_executions(limit=2)
    assert [e.id for e in listed] == ["e2", "e1"]
    assert listed[0].tasks == {}
    assert state.list_executions(workflow_id="other") == []


def _writer(path, eid, n):
    state = SQLiteState(path)
    state.save_execution(WorkflowExecution(id=eid, workflow_id="wf"))
    for i in range(n):
        state.save_task_results(eid, [TaskResult(task_id=f"t{i}", status="succeeded")])
    state.close()


def test_several_processes_write_concurrently(tmp_path):
    path = tmp_path / "state.db"
    SQLiteState(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, f"p{k}", 50)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    state = SQLiteState(path)
    assert all(len(state.get_execution(f"p{k}").tasks) == 50 for k in range(3))


def test_computed_results_finds_the_latest_success_per_cache_key(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    state.save(_execution("old", created=1.0).with_tasks({
        "a": TaskResult(task_id="a", status="succeeded", cache_key="k1", metrics={"acc": 0.8}),
        "b": TaskResult(task_id="b", status="failed", cache_key="k2")}))
    state.save(_execution("new", created=2.0).with_tasks({
        "a": TaskResult(task_id="a", status="succeeded", cache_key="k1", metrics={"acc": 0.9}),
        "c": TaskResult(task_id="c", status="cached", cache_key="k3")}))
    found = state.computed_results(["k1", "k2", "k3", "k4"])
    assert set(found) == {"k1"} and found["k1"].metrics == {"acc": 0.9}


def test_a_database_of_the_first_schema_is_migrated(tmp_path):
    import sqlite3

    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE task_results (execution_id TEXT NOT NULL, task_id TEXT NOT NULL, "
                       "status TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (execution_id, task_id));")
    conn.close()
    state = SQLiteState(path)
    state.save(_execution().with_tasks({"a": TaskResult(task_id="a", status="succeeded", cache_key="k")}))
    assert set(state.computed_results(["k"])) == {"k"}


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="cannot open the state database"):
        SQLiteState(path)


def test_many_openers_of_a_new_database_at_once_all_succeed(tmp_path):
    # Runs in threads (or processes) of one home open its state together; switching a new file
    # to WAL answers "database is locked" at once instead of waiting, which failed ~1 round in 7.
    import threading

    from mlflowdsl.runtime.state.sqlite import SQLiteState

    errors = []
    for round_no in range(20):
        path = tmp_path / f"r{round_no}" / "state.db"

        def open_and_close():
            try:
                SQLiteState(path).close()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=open_and_close) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
