"""A comparison's result is visible and usable: model_evaluation's outcome names the winner
(the task that trained it, the rank metric, its value), the run's record carries it to the
table, --json and the report, and `best_model` is the winning model for a task downstream."""

from __future__ import annotations

import io

from rich.console import Console
from test_stdlib_model_evaluation import evaluate, wine  # noqa: F401 - the fixture

from mlflowdsl.cli.views import task_table
from mlflowdsl.compiler.api import compile_text
from mlflowdsl.report import render_report
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.runtime.run_record import finished_result

PICK = """workflow pick {
  params { algos: list[str] = ["random_forest", "knn"] }
  task prep: data_preprocessing { source = "sklearn:wine" }
  task train: model_training foreach algo in params.algos {
    data      = prep.output
    algorithm = algo
  }
  task compare: model_evaluation {
    models = train[*].model
    data   = prep.output
  }
  task deploy: model_deployment {
    model = compare.best_model
    name  = "wine_best"
  }
}
"""


def test_the_outcome_names_the_winner_and_best_model_is_it(wine):  # noqa: F811 - the fixture
    data, models = wine
    out = evaluate({"models": models, "data": data})
    best = out.outputs["report"]["best"]
    assert out.outcome == {"best": best, "rank_by": "accuracy", "value": out.metrics["accuracy"], "compared": 3}
    assert best.startswith("train[") and out.outputs["best_model"] is models[[m.name for m in models].index(best)]


def test_a_deployment_takes_the_best_model_and_old_filling_is_unchanged():
    plan = compile_text(PICK, "pick.mlw").raise_for_errors()
    assert plan.task("deploy").params["model"] == {"$ref": "compare.best_model"}
    # `after compare, validate`: the left-out model still comes from validate, never best_model
    both = compile_text("""workflow w {
  task prep: data_preprocessing { source = "sklearn:wine" }
  task train: model_training { data = prep.output  algorithm = "knn" }
  task validate: model_validation { model = train.model  data = prep.output }
  task compare: model_evaluation { model = train.model  data = prep.output }
  task deploy: model_deployment after validate, compare { name = "w" }
}""", "w.mlw").raise_for_errors()
    assert both.task("deploy").params["model"] == {"$ref": "validate.model"}


def test_the_winner_reaches_the_table_json_and_report():
    meta = {"status": "succeeded", "metrics": {"accuracy": 0.9722},
            "outcome": {"best": "train[random_forest]", "rank_by": "accuracy", "value": 0.9722, "compared": 2}}
    result = finished_result(TaskResult(task_id="compare", status="running"), meta)
    execution = WorkflowExecution(id="e1", workflow_id="pick", status="succeeded", tasks={"compare": result})
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(task_table(execution))
    assert "best=train[random_forest] (accuracy=0.9722)" in buffer.getvalue()
    assert execution.summary()["tasks"]["compare"]["outcome"]["best"] == "train[random_forest]"
    assert "best: <b>train[random_forest]</b> (accuracy = 0.9722)" in render_report(execution)
