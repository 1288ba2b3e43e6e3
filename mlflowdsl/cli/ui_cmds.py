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
