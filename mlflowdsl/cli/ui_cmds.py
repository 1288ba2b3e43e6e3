"""``mlw logs`` (what an attempt printed and logged) and ``mlw ui`` (the web UI, docs/ui.md)."""

from __future__ import annotations

import sys
import time

import click

from mlflowdsl.cli.common import fail, load_settings, redis_option
from mlflowdsl.errors import MlwError

CLUSTER_STATE = "Read the cluster's state in Redis (cluster mode)."


def _open_state(home, redis_url):
    from mlflowdsl.runtime.state import open_state

    return open_state(load_settings(home=home, redis_url=redis_url), cluster=bool(redis_url))


def _header(entry, many: bool) -> str | None:
    if not many and not entry.truncated:
        return None
    cut = f", the last {len(entry.text.encode())} of {entry.total} bytes" if entry.truncated else ""
    return f"== {entry.task_id} attempt {entry.attempt}{cut} =="


@click.command("logs")
@click.argument("execution_id")
@click.argument("task_id", required=False)
@click.option("--attempt", type=int, default=None, help="Only this attempt (1 is the first).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the task (or execution) ends.")
@click.option("--home", type=click.Path(file_okay=False), default=None, help="State home (env MLW_HOME).")
@redis_option(CLUSTER_STATE)
def logs(execution_id, task_id, attempt, follow, home, redis_url):
    """What the attempts of an execution printed to stdout/stderr and logged (the last
    `attempt_log_bytes` of each attempt, default 1 MiB)."""
    try:
        state = _open_state(home, redis_url)
        try:
            execution = state.get_execution(execution_id)
            if task_id is not None and task_id not in execution.tasks:
                fail(f"execution {execution.id} has no task {task_id!r}",
                     f"its tasks are: {', '.join(execution.tasks) or 'none'}")
            entries = state.attempt_logs(execution.id, task_id, attempt)
            if not entries and not follow:
                what = f"task {task_id!r}" if task_id else "any task"
                click.echo(f"no output was captured for {what} of execution {execution.id}", err=True)
                return
            many = task_id is None or attempt is None and len(entries) > 1
            seen: dict[tuple[str, int], int] = {}
            for entry in entries:
                head = _header(entry, many)
                if head:
                    click.echo(head)
                click.echo(entry.text, nl=not entry.text.endswith("\n") and bool(entry.text) and not follow)
                seen[(entry.task_id, entry.attempt)] = entry.total
            while follow:
                execution = state.get_execution(execution.id)
                done = execution.finished if task_id is None else execution.tasks[task_id].finished
                for entry in state.attempt_logs(execution.id, task_id, attempt):
                    key = (entry.task_id, entry.attempt)
                    new = entry.total - seen.get(key, 0)
                    if new <= 0:
                        continue
                    if key not in seen and many:
                        click.echo(_header(entry, True))
                    data = entry.text.encode("utf-8", "replace")
                    click.echo(data[-new:].decode("utf-8", "replace"), nl=False)
                    sys.stdout.flush()
                    seen[key] = entry.total
                if done:
                    break
                time.sleep(0.5)
        finally:
            state.close()
    except MlwError as exc:
        fail(str(exc), exc.hint)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _dashboard(settings) -> str | None:
    """The Dask dashboard of the configured scheduler, when there is one and it answers."""
    if not settings.scheduler:
        return None
    try:
        from distributed import Client

        with Client(settings.scheduler, timeout=5) as client:
            return client.dashboard_link
    except Exception as exc:  # noqa: BLE001 - the UI works without the link
        click.echo(f"no Dask dashboard link: {exc}", err=True)
        return None


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=int, default=8777, show_default=True)
@click.option("--home", type=click.Path(file_okay=False), default=None, help="State home (env MLW_HOME): embedded mode.")
@redis_option("Read the cluster's state in Redis (cluster mode).")
@click.option("--scheduler", default=None, help="Dask scheduler whose dashboard to link (env MLW_DASK_SCHEDULER).")
@click.option("--allow-actions", is_flag=True,
              help="Allow cancel, resume and alias moves; prints a URL with the token they need.")
def ui(host, port, home, redis_url, scheduler, allow_actions):
    """A live web UI: executions, their tasks and logs, comparisons, studies and models."""
    import uvicorn

    from mlflowdsl.runtime.state import open_state
    from mlflowdsl.ui import Source, create_app
    from mlflowdsl.ui.actions import new_token

    try:
        settings = load_settings(home=home, redis_url=redis_url, scheduler=scheduler)
        state = open_state(settings, cluster=bool(redis_url))
    except MlwError as exc:
        fail(str(exc), exc.hint)
    src = Source(state=state, settings=settings, mode="cluster" if redis_url else "embedded",
                 dashboard=_dashboard(settings))
    token = new_token() if allow_actions else None
    app = create_app(src, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    click.echo(f"mlw ui ({src.mode}, {'actions allowed' if token else 'read-only'}): {url}")
    if token:
        click.echo(f"open this URL to allow actions in your browser: {url}?token={token}")
    if host not in LOOPBACK:
        click.echo(f"warning: listening on {host}, not only on this machine; anyone who can reach it reads "
                   "every execution", err=True)
    if src.dashboard:
        click.echo(f"dask dashboard: {src.dashboard}")
    sys.stdout.flush()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", "choose another --port")
    finally:
        state.close()
