"""``mlw mlflow``: MLflow interop commands (docs/mlflow.md).

``mlw mlflow sync EXECUTION_ID`` logs an execution from the state store to the MLflow tracking
server, skipping the runs already there (after a run whose tracking server was down).
"""

from __future__ import annotations

import json

import click

from mlflowdsl.cli.common import fail, load_settings
from mlflowdsl.errors import MlwError


def use_report_renderer() -> None:
    """Attach the HTML report to the parent runs logged from this process."""
    from mlflowdsl.report import render_report
    from mlflowdsl.runtime.mlflow_tracking import set_report_renderer

    set_report_renderer(lambda execution: render_report(execution))


@click.group()
def mlflow() -> None:
    """MLflow interop: replay executions into a tracking server."""


@mlflow.command()
@click.argument("execution_id")
@click.option("--mlflow", "uri", metavar="URI", help="Tracking URI (default: MLW_MLFLOW_TRACKING_URI, then MLFLOW_TRACKING_URI).")
@click.option("--experiment", metavar="NAME", help="Experiment (default: the workflow id; env MLW_MLFLOW_EXPERIMENT).")
@click.option("--json", "as_json", is_flag=True, help="Print what was logged as JSON.")
def sync(execution_id, uri, experiment, as_json):
    """Log EXECUTION_ID (from the state store) to MLflow; runs already there are kept as they are."""
    from mlflowdsl.runtime.api import load_execution
    from mlflowdsl.runtime.mlflow_tracking import sync_execution

    try:
        settings = load_settings(mlflow_tracking_uri=uri, mlflow_experiment=experiment)
        execution = load_execution(execution_id, settings)
        if not execution.finished:
            fail(f"execution {execution_id} is {execution.status}", hint="sync it once it has ended")
        use_report_renderer()
        summary = sync_execution(execution, settings)
    except MlwError as exc:
        fail(str(exc))
    if summary.error:
        fail(f"MLflow at {summary.uri}: {summary.error}; {summary.not_logged} run(s)/model(s) not logged",
             hint="check that the tracking server answers, then run the same command again")
    out = {"execution_id": execution.id, "experiment": summary.experiment, "parent_run_id": summary.parent_run_id,
           "logged": summary.logged}
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(f"execution {execution.id} in MLflow experiment {summary.experiment!r}: parent run "
                   f"{summary.parent_run_id}, {summary.logged} new run(s)/model(s) logged")
