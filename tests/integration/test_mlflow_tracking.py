"""MLflow tracking against a real tracking server (mlflow_support), read back with MlflowClient:
the parent run, nested task runs, params, metrics, tags, artifacts, a pyfunc model scoring raw
rows, the link of a cached task to the run that computed it, trial runs, a server that is down."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from mlflow_support import mlflow_server, mlflow_uri  # noqa: F401 - fixtures
from runtime_helpers import plan, ref, task

from mlflowdsl.compiler.api import compile_text
from mlflowdsl.runtime.api import run_plan
from mlflowdsl.settings import Settings

pytestmark = pytest.mark.integration

TRAINING = """mlw 1
workflow mlflow_training {
  params { seed: int = 3 }
  defaults { cache { strategy = disk } }
  task prepare: data_preprocessing {
    source = "rows.csv"
    target = "label"
    encode = "onehot"
    scale  = "standard"
    seed   = params.seed
  }
  task train: model_training {
    data            = prepare.output
    algorithm       = "random_forest"
    hyperparameters = { n_estimators = 8, max_depth = 3 }
    seed            = 0
  }
}
"""


def write_rows(path, n: int = 60) -> None:
    lines = ["amount,country,label"]
    for i in range(n):
        lines.append(f"{i * 1.5:.1f},{'fr' if i % 3 else 'de'},{1 if i > n // 2 else 0}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def settings(tmp_path, dask_cluster, mlflow_uri):  # noqa: F811 - fixture
    return Settings(home=str(tmp_path / "home"), scheduler=dask_cluster.address, mlflow_tracking_uri=mlflow_uri,
                    mlflow_experiment=f"exp-{tmp_path.name}")


def client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(settings, execution_id):
    c = client(settings.mlflow_tracking_uri)
    exp = c.get_experiment_by_name(settings.mlflow_experiment)
    assert exp is not None
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`mlw.execution_id` = '{execution_id}'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.data.tags for r in runs]
    parent = parents[0]
    tasks = {r.data.tags["mlw.task_id"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return c, parent, tasks, runs


def small_plan(tmp_path):
    logs = str(tmp_path / "logs")
    return plan(task("a", "step", name="a", log_dir=logs, x=2),
                task("b", "step", ["a"], name="b", log_dir=logs, inputs=[ref("a")], x=1),
                task("c", "step", ["a"], name="c", log_dir=logs, inputs=[ref("a")], x=5), id="tracked")


def test_an_execution_becomes_a_parent_run_with_one_nested_run_per_task(tmp_path, settings):
    ex = run_plan(small_plan(tmp_path), settings)
    assert ex.status == "succeeded"
    c, parent, tasks, _ = runs_of(settings, ex.id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlw.workflow_id"] == "tracked"
    assert parent.data.tags["mlw.plan_fingerprint"] == ex.plan_fingerprint
    assert parent.data.tags["mlw.status"] == "succeeded"
    assert parent.data.metrics["tasks_succeeded"] == 3
    assert set(tasks) == {"a", "b", "c"}
    b = tasks["b"]
    assert b.info.status == "FINISHED"
    assert b.data.tags["mlw.task_type"] == "custom"
    assert b.data.tags["mlw.cache"] == "miss"
    assert b.data.tags["mlw.attempts"] == "1"
    assert b.data.metrics["total"] == 3.0  # 2 from a, plus x=1
    assert b.data.params["inputs"] == '["a.output"]'  # a reference is written as the upstream output
    assert b.data.params["x"] == "1"
    artifacts = {f.path for f in c.list_artifacts(parent.info.run_id)}
    assert "plan.json" in artifacts
    import json

    plan_text = c.download_artifacts(parent.info.run_id, "plan.json", str(tmp_path))
    assert [t["id"] for t in json.load(open(plan_text))["tasks"]] == ["a", "b", "c"]


def test_a_trained_model_loads_with_pyfunc_and_scores_raw_rows(tmp_path, settings, monkeypatch):
    import mlflow.pyfunc
    import pandas as pd

    write_rows(tmp_path / "rows.csv")
    src = tmp_path / "train.mlw"
    src.write_text(TRAINING)
    the_plan = compile_text(TRAINING, str(src)).raise_for_errors()
    ex = run_plan(the_plan, settings, base_dir=str(tmp_path))
    assert ex.status == "succeeded", ex.tasks
    c, parent, tasks, _ = runs_of(settings, ex.id)
    assert parent.data.params["seed"] == "3"
    train = tasks["train"]
    assert train.data.params["hyperparameters.n_estimators"] == "8"
    assert train.data.params["data"] == "prepare.output"
    assert "accuracy" in train.data.metrics
    uri = train.data.tags["mlw.model_uri"]
    assert uri == f"runs:/{train.info.run_id}/model"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)  # runs:/ URIs resolve against it
    loaded = mlflow.pyfunc.load_model(uri)
    assert loaded.metadata.signature is not None
    assert [i.name for i in loaded.metadata.signature.inputs.inputs] == ["amount", "country"]
    raw = pd.DataFrame({"amount": [1.0, 80.0, 45.0], "country": ["fr", "de", "fr"]})
    from mlflowdsl.runtime.cache import open_cache

    ours = open_cache("disk", settings).get(ex.tasks["train"].cache_key)[1].outputs["model"]
    assert list(loaded.predict(raw)) == list(ours.predict(raw))

    # a rerun is served from the cache: its runs say so and link to the run that computed them
    again = run_plan(the_plan, settings, base_dir=str(tmp_path))
    assert again.tasks["train"].status == "cached"
    _, _, cached_tasks, _ = runs_of(settings, again.id)
    assert cached_tasks["train"].data.tags["mlw.cache"] == "hit"
    assert cached_tasks["train"].data.tags["mlw.computed_by_run"] == train.info.run_id


@pytest.mark.slow
def test_server_down_the_workflow_succeeds_with_one_warning_and_sync_replays_it(tmp_path, settings, mlflow_server,  # noqa: F811
                                                                               caplog):
    mlflow_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mlflowdsl.runtime.mlflow_tracking"):
            ex = run_plan(small_plan(tmp_path), settings)
        assert ex.status == "succeeded"
        warnings = [r.getMessage() for r in caplog.records if "MLflow tracking" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "4 run(s)/model(s)" in warnings[0] and f"mlw mlflow sync {ex.id}" in warnings[0]
    finally:
        mlflow_server.start()
    from click.testing import CliRunner

    from mlflowdsl.cli import cli

    result = CliRunner().invoke(cli, ["mlflow", "sync", ex.id], env={
        "MLW_HOME": settings.home, "MLW_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLW_MLFLOW_EXPERIMENT": settings.mlflow_experiment})
    assert result.exit_code == 0, result.output
    _, parent, tasks, _ = runs_of(settings, ex.id)
    assert set(tasks) == {"a", "b", "c"} and parent.info.status == "FINISHED"
    # a second sync finds everything there and logs nothing twice
    result = CliRunner().invoke(cli, ["mlflow", "sync", ex.id], env={
        "MLW_HOME": settings.home, "MLW_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MLW_MLFLOW_EXPERIMENT": settings.mlflow_experiment})
    assert result.exit_code == 0, result.output
    _, _, _, runs = runs_of(settings, ex.id)
    assert len(runs) == 4


def test_a_failed_task_is_a_failed_run_and_tracking_off_touches_nothing(tmp_path, settings, monkeypatch):
    logs = str(tmp_path / "logs")
    p = plan(task("ok", "step", name="ok", log_dir=logs), task("bad", "gate", ["ok"], name="bad", log_dir=logs), id="gated")
    ex = run_plan(p, settings)
    assert ex.status == "failed"
    _, parent, tasks, _ = runs_of(settings, ex.id)
    assert parent.info.status == "FAILED"
    assert tasks["bad"].info.status == "FAILED"
    assert "below the threshold" in tasks["bad"].data.tags["mlw.error"]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # else MLflow's own variable turns tracking on
    off = replace(settings, mlflow_tracking_uri=None, mlflow_experiment=f"off-{tmp_path.name}")
    ex = run_plan(small_plan(tmp_path), off)
    assert ex.status == "succeeded"
    assert client(settings.mlflow_tracking_uri).get_experiment_by_name(off.mlflow_experiment) is None


TUNED = """mlw 1
workflow mlflow_tuned {
  defaults { cache { strategy = disk } }
  task prepare: data_preprocessing {
    source = "sklearn:breast_cancer"
    scale  = "standard"
    seed   = 0
  }
  task train: model_training {
    data            = prepare.output
    algorithm       = "logistic_regression"
    seed            = 0
  }
  tune train {
    search { C = float(0.01, 10.0, log = true) }
    objective = maximize(accuracy)
    trials    = 3
    seed      = 1
  }
}
"""


def test_a_tuned_task_gets_one_child_run_per_trial_with_the_best_tagged(tmp_path, settings):
    src = tmp_path / "tuned.mlw"
    src.write_text(TUNED)
    ex = run_plan(compile_text(TUNED, str(src)).raise_for_errors(), settings, base_dir=str(tmp_path))
    assert ex.status == "succeeded", ex.tasks
    study = ex.tasks["train"].study
    _, _, tasks, runs = runs_of(settings, ex.id)
    train_run = tasks["train"].info.run_id
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == train_run]
    assert sorted(int(r.data.tags["mlw.trial"]) for r in trials) == [0, 1, 2]
    best = [r for r in trials if r.data.tags.get("mlw.best_trial") == "true"]
    assert len(best) == 1 and int(best[0].data.tags["mlw.trial"]) == study["best_trial"]
    assert best[0].data.metrics["accuracy"] == pytest.approx(study["best_value"])
    assert float(best[0].data.params["C"]) == pytest.approx(study["best_params"]["C"])


def test_mlw_run_with_mlflow_logs_the_html_report_and_the_plan(tmp_path, settings, monkeypatch):
    from click.testing import CliRunner

    from mlflowdsl.cli import cli

    write_rows(tmp_path / "rows.csv")
    src = tmp_path / "train.mlw"
    src.write_text(TRAINING.replace("    seed            = 0\n", "    seed            = 0\n    when            = params.seed > 5\n"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", str(src), "--json", "--mlflow", settings.mlflow_tracking_uri,
                                      "--scheduler", settings.scheduler],
                                env={"MLW_HOME": settings.home, "MLW_MLFLOW_EXPERIMENT": settings.mlflow_experiment})
    assert result.exit_code == 0, result.output
    import json

    execution_id = json.loads(result.output[result.output.index("{"):])["execution_id"]
    c, parent, tasks, _ = runs_of(settings, execution_id)
    assert tasks["train"].info.status == "KILLED"  # skipped by `when false`
    names = {f.path for f in c.list_artifacts(parent.info.run_id)}
    assert {"plan.json", "report.html"} <= names
    report = c.download_artifacts(parent.info.run_id, "report.html", str(tmp_path))
    assert execution_id in open(report).read()
