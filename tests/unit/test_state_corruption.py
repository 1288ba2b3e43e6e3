"""A damaged ``state.db`` (any page, any command) gives the clear "cannot open the state
database ... move it away" error, never a raw ``sqlite3`` traceback (issue 14, point 8)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from mlflowdsl.errors import StateError
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.sqlite import SQLiteState

PAGE = 4096
MAIN = "import sys; from mlflowdsl.cli import main; main(sys.argv[1:])"
WORKFLOW = 'workflow w {\n  task a: data_preprocessing { source = "sklearn:iris" }\n}\n'


def _history(path) -> None:
    state = SQLiteState(path)
    for i in range(30):  # several pages of executions and task results
        state.save_execution(WorkflowExecution(id=f"e{i}", workflow_id="w", plan_json="x" * 3000))
        state.save_task_results(f"e{i}", [TaskResult(task_id="a", status="succeeded", cache_key=f"k{i}")])
    state.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, none in the WAL
    conn.close()


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "page 2 garbage":
        data[PAGE:2 * PAGE] = b"\x17garbage!" * (PAGE // 9) + b"\x00" * (PAGE % 9)
    elif how == "header garbage":
        data[:100] = b"\xff" * 100
    elif how == "truncated":
        data = data[:PAGE + PAGE // 2]
    elif how == "last page garbage":
        data[-PAGE:] = b"\xab" * PAGE
    path.write_bytes(bytes(data))


def _operations(state: SQLiteState):
    yield lambda: state.list_executions()
    yield lambda: state.get_execution("e3")
    yield lambda: state.computed_results([f"k{i}" for i in range(30)])
    yield lambda: state.save_execution(WorkflowExecution(id="new", workflow_id="w"))
    yield lambda: state.save_task_results("new", [TaskResult(task_id="a", status="succeeded")])


@pytest.mark.parametrize("how", ["page 2 garbage", "header garbage", "truncated", "last page garbage"])
def test_every_operation_on_a_damaged_database_is_a_state_error(tmp_path, how):
    path = tmp_path / "state.db"
    _history(path)
    _damage(path, how)
    failures = 0
    try:
        state = SQLiteState(path)
    except StateError as exc:
        assert "cannot open the state database" in exc.message and "move the file away" in exc.hint
        return
    for op in _operations(state):
        try:
            op()
        except StateError as exc:
            failures += 1
            assert "cannot open the state database" in exc.message and exc.subject == str(path)
            assert "move the file away" in exc.hint
    # (a raw sqlite3.DatabaseError would have escaped the loop and failed the test)
    if how == "page 2 garbage":
        assert failures >= 1


def _mlw(home, *args, cwd):
    env = {**os.environ, "MLW_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", MAIN, *args], capture_output=True, text=True, timeout=180,
                          env=env, cwd=cwd)


@pytest.mark.parametrize("command", [("run", "w.mlw"), ("status",), ("status", "e1"), ("report", "e1"),
                                     ("plan", "w.mlw"), ("explain", "e1", "a")])
def test_each_command_reports_a_corrupt_page_2_clearly(tmp_path, command):
    home = tmp_path / "home"
    home.mkdir()
    _history(home / "state.db")
    _damage(home / "state.db", "page 2 garbage")
    (tmp_path / "w.mlw").write_text(WORKFLOW)
    out = _mlw(home, *command, cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "cannot open the state database" in out.stderr and "move the file away" in out.stderr
    assert "Traceback" not in out.stderr and "sqlite3." not in out.stderr
