"""``mlw plan``, ``mlw explain``, ``mlw diff``, ``mlw report`` and ``mlw new``: see what will
run and why before running, and where the time went after (docs/observability.md)."""

from __future__ import annotations

import json
import os

import click

from mlflowdsl.cli.common import compile_plan, fail, load_settings, param_options, redis_option
from mlflowdsl.cli.views import console
from mlflowdsl.errors import MlwError

PLAN_STYLE = {"cached": "cyan", "will run": "bold yellow", "skipped": "dim"}
CLUSTER_STATE = "Read the cluster's state in Redis (cluster mode)."


@click.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@param_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Disk cache directory (env MLW_CACHE_DIR).")
@redis_option(CLUSTER_STATE)
def plan(file, params, params_file, fmt, cache_dir, redis_url):
    """What `mlw run FILE` would do now: each task cached, will run (and why) or skipped."""
    from mlflowdsl.runtime.api import workflow_dir
    from mlflowdsl.runtime.datafp import fingerprinter
    from mlflowdsl.runtime.plan_status import History, cache_probe, plan_status
    from mlflowdsl.runtime.state import open_state

    the_plan = compile_plan(file, params, params_file, show_warnings=False)
    try:
        settings = load_settings(cache_dir=cache_dir, redis_url=redis_url)
        home = settings.home_path.resolve()
        # read-only: a home that does not exist has no history, and is not created here
        recorded = bool(redis_url) or (settings.home_path / "state.db").exists()
        history = History()
        if recorded:
            state = open_state(settings, cluster=bool(redis_url))
            try:
                history = History.load(state, the_plan.workflow.id, tasks={t.id for t in the_plan.tasks})
            finally:
                state.close()
        # data fingerprints are remembered under the home when it exists (never created here)
        fingerprint = fingerprinter(settings)
        try:
            rows = plan_status(the_plan, base_dir=workflow_dir(the_plan), contains=cache_probe(settings),
                               history=history, fingerprint=fingerprint)
        finally:
            fingerprint.close()
    except MlwError as exc:
        fail(str(exc), exc.hint)
    if fmt == "json":
        counts: dict[str, int] = {}
        for r in rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        click.echo(json.dumps({"workflow_id": the_plan.workflow.id, "counts": counts, "home": str(home),
                               "tasks": [r.as_dict() for r in rows]}, indent=2, sort_keys=True, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"plan of {the_plan.workflow.id} (nothing has run)")
    for column in ("task", "status", "why"):
        table.add_column(column, no_wrap=column != "why")
    for r in rows:
        why = "; ".join(r.reasons)
        if r.status == "cached" and r.previous_execution:
            why = f"entry from execution {r.previous_execution}"
        table.add_row(escape(r.task_id), f"[{PLAN_STYLE[r.status]}]{r.status}[/]", escape(why))
    out = console()
    out.print(table)
    runs = sum(r.status == "will run" for r in rows)
    out.print(f"{runs} of {len(rows)} task(s) would run (--format json shows each changed field)", highlight=False)
    if recorded:
        out.print(f"history and cache: {escape(str(home))}", highlight=False)
    else:
        out.print(f"no runs recorded under {escape(str(home))}: the home is relative to the current directory "
                  "(run from the project's directory, or set MLW_HOME)", highlight=False)


@click.command("explain")
@click.argument("execution_id")
@click.argument("task_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@redis_option(CLUSTER_STATE)
def explain(execution_id, task_id, fmt, redis_url):
    """Why TASK of an execution hit or missed the cache: its key's components, field by field,
    against the nearest previous entry."""
    from mlflowdsl.runtime.plan_status import explain as explain_task
    from mlflowdsl.runtime.state import open_state

    try:
        state = open_state(load_settings(redis_url=redis_url), cluster=bool(redis_url))
        try:
            e = explain_task(state, execution_id, task_id)
        finally:
            state.close()
    except MlwError as exc:
        fail(str(exc), exc.hint)
    if fmt == "json":
        click.echo(json.dumps(e.as_dict(), indent=2, sort_keys=True, default=str))
        return
    click.echo(f"{e.task_id} in execution {e.execution_id}: {e.summary}")
    if e.changes:
        click.echo(f"changed since execution {e.previous_execution}:")
        width = max(len(c.field) for c in e.changes)
        for c in e.changes:
            click.echo(f"  {c.field:<{width}}  {json.dumps(c.old, default=str)} -> "
                       f"{json.dumps(c.new, default=str)}  ({c.reason})")


@click.command("diff")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def diff(old, new, fmt):
    """Semantic diff of two workflows: tasks added, removed, changed (which fields), and what
    would rerun."""
    from mlflowdsl.compiler.diff import diff_plans, render_text

    d = diff_plans(compile_plan(old, show_warnings=False), compile_plan(new, show_warnings=False))
    if fmt == "json":
        click.echo(json.dumps(d.as_dict(), indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_text(d, old, new), nl=False)


@click.command("report")
@click.argument("execution_id")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="report.html", show_default=True,
              help="The HTML file to write.")
@redis_option(CLUSTER_STATE)
def report(execution_id, output, redis_url):
    """Write one self-contained HTML report of an execution (DAG, timeline, tasks)."""
    from mlflowdsl.report import write_report
    from mlflowdsl.runtime.state import open_state

    try:
        settings = load_settings(redis_url=redis_url)
        state = open_state(settings, cluster=bool(redis_url))
        try:
            execution = state.get_execution(execution_id)
        finally:
            state.close()
        path = write_report(execution, output, settings=settings)
    except MlwError as exc:
        fail(str(exc), exc.hint)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", "choose a writable path with -o")
    click.echo(f"report: {os.path.abspath(path)}")


@click.command("new")
@click.argument("name")
@click.option("--template", "template", default="classification", show_default=True,
              type=click.Choice(["classification", "regression", "tuning", "batch-scoring", "model-comparison"]))
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Where to create the project (default ./NAME).")
@click.option("--force", is_flag=True, help="Write into an existing non-empty directory.")
def new(name, template, directory, force):
    """Create a ready-to-run project NAME from a template (a .mlw file, params, README)."""
    from mlflowdsl.templates import TemplateError, create_project

    try:
        written = create_project(name, template, directory or name, force=force)
    except TemplateError as exc:
        fail(str(exc), exc.hint)
    for path in written:
        click.echo(f"created {path}")
    main = os.path.basename(next(p for p in written if p.endswith(".mlw")))
    click.echo(f"next: cd {directory or name} && mlw run {main} --params-file params.yaml")
