"""``mlw run`` and ``mlw status``: thin commands over ``mlflowdsl.runtime.api``.

Exit codes: 0 the workflow succeeded; 1 it failed, did not compile, or could not run (bad
settings, refused resources); 130 it was cancelled (Ctrl-C); 2 usage errors (click).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import click

from mlflowdsl.cli.common import compile_plan, fail, load_settings, param_options, print_diagnostics, redis_option
from mlflowdsl.cli.study_view import print_studies
from mlflowdsl.cli.views import (
    STATUS_STYLE,
    Display,
    console,
    fmt_duration,
    esc,
    ordered_tasks,
    print_dead_letters,
    task_table,
)
from mlflowdsl.errors import CompileError, MlwError

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 130}


@click.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@param_options
@click.option("--scheduler", metavar="ADDR", help="Run on an existing Dask cluster (default: an embedded one; env MLW_DASK_SCHEDULER).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Disk cache directory (default <home>/cache; env MLW_CACHE_DIR).")
@click.option("--fail-fast/--keep-going", default=True,
              help="On a failure, cancel what has not started (default), or run everything not downstream of it.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of the table.")
@click.option("--resume", "resume_id", metavar="EXECUTION_ID", help="Finish a failed, cancelled or interrupted execution.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write a self-contained HTML report of the run to FILE.")
@click.option("--dashboard", "want_dashboard", is_flag=True,
              help="Say why there is no Dask dashboard when there is none (its address is always shown).")
@click.option("--mlflow", "mlflow_uri", metavar="URI",
              help="Track the run in MLflow at URI (env MLW_MLFLOW_TRACKING_URI; MLFLOW_TRACKING_URI is honoured).")
def run(file, params, params_file, scheduler, cache_dir, fail_fast, as_json, resume_id, report_path,
        want_dashboard, mlflow_uri):
    """Compile FILE and run it; show progress and a table of the tasks at the end."""
    if not file and not resume_id:
        raise click.UsageError("give a workflow FILE, or --resume EXECUTION_ID")
    try:
        settings = load_settings(scheduler=scheduler, cache_dir=cache_dir, mlflow_tracking_uri=mlflow_uri)
        _mlflow_report(settings)
        display = Display(live=True, quiet=as_json)
        if resume_id:
            from mlflowdsl.runtime.api import resume

            with _client(settings, _resume_paths(resume_id, settings), as_json, want_dashboard) as client, display:
                execution = resume(resume_id, settings, keep_going=None if fail_fast else True, listener=display,
                                   client=client)
        else:
            from mlflowdsl.runtime.api import run_plan, workflow_dir

            the_plan = compile_plan(file, params, params_file, show_warnings=not as_json)
            with _client(settings, [workflow_dir(the_plan)], as_json, want_dashboard) as client, display:
                execution = run_plan(the_plan, settings, keep_going=not fail_fast, listener=display,
                                     client=client)
    except CompileError as exc:
        print_diagnostics(exc.diagnostics, {})
        sys.exit(1)
    except MlwError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        # Ctrl-C while compiling or while the cluster starts: nothing ran, the exit says cancelled
        click.echo("cancelled (Ctrl-C) before the workflow started", err=True)
        sys.exit(EXIT_CODES["cancelled"])
    _report(execution, settings, as_json)
    if report_path:
        _write_html_report(execution, settings, report_path, as_json)
    sys.exit(EXIT_CODES.get(execution.status, 1))


def _mlflow_report(settings) -> None:
    """With MLflow tracking on, the HTML report goes with each parent run (docs/mlflow.md)."""
    from mlflowdsl.runtime.mlflow_tracking import set_report_renderer, tracking_uri

    if tracking_uri(settings):
        from mlflowdsl.report import render_report

        set_report_renderer(lambda execution: render_report(execution))


@contextlib.contextmanager
def _client(settings, import_paths: list[str], as_json: bool, want_dashboard: bool):
    """The run's Dask client, opened on demand: only when a task must run or be loaded, so a
    fully cached or skipped run starts no cluster. Without ``--scheduler`` a warm cluster
    (``mlw cluster up``) is used when ``<home>/cluster.json`` names a live one. The dashboard's address is shown when it
    opens (why there is none only when asked: ``--dashboard``)."""
    from mlflowdsl.runtime.cluster import ClientOnDemand

    def on_open(client) -> None:
        if demand.warm_address:
            click.echo(f"using the warm cluster at {demand.warm_address} (`mlw cluster down` stops it)", err=as_json)
        line = dashboard_line(client)
        if want_dashboard or not line.startswith("dashboard unavailable"):
            click.echo(line, err=as_json)

    def on_skip() -> None:
        if want_dashboard:
            click.echo("dashboard unavailable (no cluster was started: every task was cached or skipped)",
                       err=as_json)

    with ClientOnDemand(settings, import_paths=import_paths, on_open=on_open, on_skip=on_skip,
                        use_warm=True) as demand:
        yield demand


def _resume_paths(execution_id: str, settings) -> list[str]:
    """The resumed workflow's directory, so custom modules next to it import on the workers."""
    from mlflowdsl.ir import Plan
    from mlflowdsl.runtime.api import load_execution, workflow_dir

    previous = load_execution(execution_id, settings)
    return [workflow_dir(Plan.from_json(previous.plan_json))] if previous.plan_json else []


def dashboard_line(client) -> str:
    """Where the Dask dashboard is, or why there is none (it needs bokeh)."""
    try:
        info = client.scheduler_info()
        port = (info.get("services") or {}).get("dashboard")
    except Exception:  # noqa: BLE001 - the address is a convenience, never a failure
        port = None
    if not port:
        return "dashboard unavailable (pip install bokeh)"
    host = client.scheduler.address.split("://", 1)[-1].rsplit(":", 1)[0] or "127.0.0.1"
    url = f"http://{host}:{port}/status"
    # Dask serves its HTTP routes without bokeh too; the page then only says bokeh is missing.
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as page:
            body = page.read(4096)
    except Exception:  # noqa: BLE001
        return f"dashboard unavailable (no answer at {url})"
    if b"needs bokeh" in body:
        return "dashboard unavailable (pip install bokeh)"
    return f"dashboard: {url}"


def _write_html_report(execution, settings, path: str, as_json: bool) -> None:
    from mlflowdsl.report import write_report

    try:
        written = write_report(execution, path, settings=settings)
    except OSError as exc:
        fail(f"cannot write the report {path}: {exc.strerror}")
    click.echo(f"report: {os.path.abspath(written)}", err=as_json)


def _report(execution, settings, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(execution.summary(), indent=2, sort_keys=True))
        return
    out = console()
    out.print(task_table(execution))
    print_studies(out, execution)
    for tid, r in ordered_tasks(execution):
        if r.status == "failed" and r.attempt_errors:
            last = r.attempt_errors[-1]
            out.print(f"[bold red]{esc(tid)}[/] failed after {r.attempts} attempt(s): "
                      f"{esc(last.type)}: {esc(last.message)}", highlight=False)
    artifacts = settings.artifact_path / execution.id
    out.print(f"execution [bold]{execution.id}[/] {execution.status} in {fmt_duration(execution.duration_s)}; "
              f"details: mlw status {execution.id}", highlight=False)
    if artifacts.exists():
        out.print(f"outputs: {artifacts.resolve()}", highlight=False)
    if execution.status in ("failed", "cancelled"):
        out.print(f"finish it with: mlw run --resume {execution.id}", highlight=False)


@click.command()
@click.argument("execution_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", default=20, show_default=True, help="How many executions to list.")
@click.option("--workflow", metavar="ID", help="Only executions of this workflow.")
@redis_option("Show the cluster's executions (state in Redis) and dead letters.")
@click.option("--watch", is_flag=True, help="Refresh the execution's table until it ends (Ctrl-C stops watching).")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between refreshes with --watch.")
def status(execution_id, as_json, limit, workflow, redis_url, watch, interval):
    """List recent executions, or show one (tasks, attempts, errors)."""
    from mlflowdsl.runtime.state import open_state

    try:
        state = open_state(load_settings(redis_url=redis_url), cluster=bool(redis_url))
        if watch and not execution_id:
            raise click.UsageError("--watch needs an EXECUTION_ID")
        if execution_id and watch:
            _show_execution(_watch(state, execution_id, interval), as_json)
        elif execution_id:
            _show_execution(state.get_execution(execution_id), as_json)
        else:
            _list_executions(state.list_executions(limit=limit, workflow_id=workflow), as_json)
            if redis_url and not as_json:
                print_dead_letters(state.gateway)
    except MlwError as exc:
        fail(str(exc))


def _watch(state, execution_id: str, interval: float):
    """Redraw the task table (rich Live) until the execution ends; returns its last record."""
    from rich.live import Live

    execution = state.get_execution(execution_id)
    try:
        with Live(task_table(execution), console=console(), refresh_per_second=4, transient=True) as live:
            while not execution.finished:
                time.sleep(max(0.05, interval))
                execution = state.get_execution(execution.id)
                live.update(task_table(execution))
    except KeyboardInterrupt:
        pass  # stop watching; the run itself goes on
    return execution


def _show_execution(execution, as_json: bool) -> None:
    if as_json:
        data = execution.summary()
        data.update(workflow_name=execution.workflow_name, created=execution.created, started=execution.started,
                    ended=execution.ended, source=execution.source, params=execution.params,
                    plan_fingerprint=execution.plan_fingerprint, error=execution.error)
        for tid, r in ordered_tasks(execution):
            data["tasks"][tid].update(cache_key=r.cache_key, worker=r.worker, started=r.started, ended=r.ended,
                                      attempt_errors=[e.model_dump(mode="json") for e in r.attempt_errors],
                                      cpu_s=r.cpu_s, peak_rss=r.peak_rss,
                                      usage=[u.model_dump(mode="json") for u in r.usage])
            if r.study:
                data["tasks"][tid]["study"] = r.study
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    out = console()
    out.print(task_table(execution))
    print_studies(out, execution)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(execution.created))
    out.print(f"created {when}; duration {fmt_duration(execution.duration_s)}; "
              f"source {execution.source or '-'}", highlight=False)
    if execution.error:
        out.print(f"error: {esc(execution.error)}", highlight=False)
    for tid, r in ordered_tasks(execution):
        for e in r.attempt_errors:
            out.print(f"[red]{esc(tid)}[/] attempt {e.attempt}: {esc(e.type)}: {esc(e.message)}",
                      highlight=False)


def _list_executions(executions, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([{"execution_id": e.id, "workflow_id": e.workflow_id, "status": e.status,
                                "created": e.created, "duration_s": e.duration_s, "source": e.source}
                               for e in executions], indent=2))
        return
    if not executions:
        click.echo("no executions yet (run one with `mlw run FILE`)")
        return
    from rich.table import Table

    table = Table(title="executions (newest first)")
    for column in ("id", "workflow", "status", "created", "duration", "source"):
        table.add_column(column)
    for e in executions:
        table.add_row(e.id, e.workflow_id, f"[{STATUS_STYLE.get(e.status, '')}]{e.status}[/]",
                      time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created)),
                      fmt_duration(e.duration_s), e.source or "-")
    console().print(table)
