"""What a new user sees printed: task ids verbatim (no rich markup eaten), whole-number metrics
in full, tasks in dependency order, clean errors for impossible version numbers."""

from __future__ import annotations

import io

from click.testing import CliRunner
from rich.console import Console

from mlflowdsl.cli import cli
from mlflowdsl.cli.views import Display, fmt_metrics, task_table
from mlflowdsl.ir import Plan, Task, Workflow
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.sqlite import SQLiteState
from test_registry_cli import home  # noqa: F401 - fixture


def _render(renderable) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(renderable)
    return buffer.getvalue()


def _execution(order: list[str]) -> WorkflowExecution:
    plan = Plan(workflow=Workflow(id="w"), tasks=[
        Task(id="prepare", type="custom", uses="m:f"),
        Task(id="train[random_forest]", type="custom", uses="m:f", dependencies=["prepare"]),
        Task(id="compare", type="custom", uses="m:f", dependencies=["train[random_forest]"])])
    tasks = {tid: TaskResult(task_id=tid, status="succeeded", metrics={"rows": 100000.0, "accuracy": 0.912345})
             for tid in order}
    return WorkflowExecution(id="e1", workflow_id="w", plan_json=plan.model_dump_json(), tasks=tasks)


def test_task_ids_with_brackets_print_verbatim():
    text = _render(task_table(_execution(["prepare", "train[random_forest]", "compare"])))
    assert "train[random_forest]" in text


def test_live_progress_shows_bracketed_ids():
    display = Display(live=True, quiet=False)
    display.console = Console(file=io.StringIO(), width=200, color_system=None, force_terminal=True)
    display.live_mode = True
    execution = _execution(["prepare", "train[random_forest]", "compare"])
    execution = execution.with_tasks({**execution.tasks, "train[random_forest]": TaskResult(
        task_id="train[random_forest]", status="running")})
    with display:
        display(execution, None)
        rendered = _render(display.progress.get_renderable())
    assert "train[random_forest]" in rendered


def test_whole_number_metrics_print_in_full():
    assert fmt_metrics({"rows": 100000.0, "accuracy": 0.912345, "n": 3}) == "rows=100000  accuracy=0.9123  n=3"
    assert "rows=100000" in _render(task_table(_execution(["prepare"])))


def test_status_lists_tasks_in_dependency_order(tmp_path):
    state = SQLiteState(tmp_path / "state.db")
    # results are stored as tasks finish, in no particular order
    state.save(_execution(["compare", "train[random_forest]", "prepare"]))
    text = _render(task_table(state.get_execution("e1")))
    state.close()
    positions = [text.index(tid) for tid in ("prepare", "train[random_forest]", "compare")]
    assert positions == sorted(positions)


def test_plan_prints_bracketed_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.mlw").write_text('''mlw 1
workflow w {
  params { algos: list[str] = ["random_forest", "knn"] }
  task prepare: data_preprocessing { source = "sklearn:wine" }
  task train: model_training foreach algo in params.algos {
    data = prepare.output
    algorithm = algo
  }
}
''')
    result = CliRunner().invoke(cli, ["plan", "w.mlw"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "train[random_forest]" in result.output and "train[knn]" in result.output


def test_a_huge_version_number_is_a_clean_error(home):  # noqa: F811 - the fixture
    result = CliRunner().invoke(cli, ["models", "show", "fraud/99999999999999999999999", "--home", home],
                                catch_exceptions=False)
    assert result.exit_code == 1 and "no registered model fraud/99999999999999999999999" in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output
