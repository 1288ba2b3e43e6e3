"""What the commands print: the rich console, the task table of an execution, live progress
of a run (``mlw run``, ``mlw status --watch``, ``make demo``) and the dead letters of a
cluster. Command modules import from here, never from each other."""

from __future__ import annotations

from typing import Any

import click

STATUS_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "bold red", "skipped": "yellow",
                "running": "blue", "pending": "dim", "cancelled": "yellow"}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 120:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


def fmt_number(value: Any) -> str:
    """A metric for people: whole numbers in full (``rows=100000``, not ``1e+05``), others to
    four significant digits.

    >>> fmt_number(100000.0), fmt_number(0.912345), fmt_number(3), fmt_number(1.5e-7)
    ('100000', '0.9123', '3', '1.5e-07')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.4g}"


def fmt_metrics(metrics: dict[str, float], limit: int = 3) -> str:
    return "  ".join(f"{k}={fmt_number(v)}" for k, v in list(metrics.items())[:limit])


def fmt_outcome(outcome: dict[str, Any]) -> str:
    """A task's outcome in a few words: ``best=train[knn] (accuracy=0.9444)`` for a comparison.

    >>> fmt_outcome({"best": "train[knn]", "rank_by": "accuracy", "value": 0.94444})
    'best=train[knn] (accuracy=0.9444)'
    """
    if not outcome:
        return ""
    if "best" in outcome and "rank_by" in outcome:
        return f"best={outcome['best']} ({outcome['rank_by']}={fmt_number(outcome.get('value'))})"
    return "  ".join(f"{k}={fmt_number(v)}" for k, v in outcome.items())


def ordered_tasks(execution) -> list[tuple[str, Any]]:
    """The execution's task results in the plan's order (dependencies first), whatever order
    the state store returned them in; tasks the plan does not list come last."""
    import json

    order: list[str] = []
    if execution.plan_json:
        try:
            order = [t["id"] for t in json.loads(execution.plan_json).get("tasks", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            order = []
    rank = {tid: n for n, tid in enumerate(order)}
    return sorted(execution.tasks.items(), key=lambda item: rank.get(item[0], len(rank)))


def esc(text: Any) -> str:
    """``text`` with rich markup escaped: ids like ``train[random_forest]`` print verbatim."""
    from rich.markup import escape

    return escape(str(text))


def console() -> Any:
    """A rich console; off a terminal, wide enough that tables do not wrap every cell."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=120, soft_wrap=True)


def task_table(execution) -> Any:
    from rich.markup import escape
    from rich.table import Table

    from mlflowdsl.runtime.usage import fmt_bytes

    table = Table(title=f"{execution.workflow_id} · {execution.id} · "
                        f"[{STATUS_STYLE.get(execution.status, '')}]{execution.status}[/]")
    for column in ("task", "status", "duration", "cpu", "peak mem", "attempts", "cache", "metrics"):
        table.add_column(column, no_wrap=column in ("task", "status"))
    for tid, r in ordered_tasks(execution):
        note = "  ".join(p for p in (fmt_outcome(r.outcome), fmt_metrics(r.metrics)) if p) or (r.error or "")
        # ids like `train[knn]` would otherwise be read as rich markup and lose their brackets
        table.add_row(escape(tid), f"[{STATUS_STYLE.get(r.status, '')}]{r.status}[/]", fmt_duration(r.duration_s),
                      fmt_duration(r.cpu_s), fmt_bytes(r.peak_rss),
                      str(r.attempts) if r.attempts else "-", "hit" if r.cached else "-", escape(note))
    return table


class Display:
    """Live progress on a terminal (rich), one line per finished task otherwise."""

    def __init__(self, *, live: bool, quiet: bool):
        from rich.console import Console

        self.console = Console(stderr=False)
        self.quiet = quiet
        self.live_mode = live and not quiet and self.console.is_terminal
        self.progress = self.bar = None
        self.printed: set[str] = set()
        self.finished: set[str] = set()
        self.running: dict[str, None] = {}  # insertion-ordered set

    def __enter__(self) -> "Display":
        if self.live_mode:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            # markup=False: task ids like `train[random_forest]` are shown as they are
            self.progress = Progress(TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TextColumn("{task.fields[running]}", markup=False),
                                     console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, execution, result) -> None:
        if self.quiet:
            return
        # Counted incrementally: a listener that scanned every task on every update would
        # cost O(tasks^2) on a large DAG.
        if result is None:
            self.finished = {t for t, r in execution.tasks.items() if r.finished}
            self.running = {t: None for t, r in execution.tasks.items() if r.status == "running"}
        else:
            self.running.pop(result.task_id, None)
            if result.finished:
                self.finished.add(result.task_id)
            elif result.status == "running":
                self.running[result.task_id] = None
        done, total = len(self.finished), len(execution.tasks)
        if self.progress is not None:
            running = list(self.running)
            label = ", ".join(running[:4]) + (f" +{len(running) - 4}" if len(running) > 4 else "")
            if self.bar is None:
                self.bar = self.progress.add_task(execution.workflow_id, total=total, running="")
            self.progress.update(self.bar, completed=done, running=label)
            return
        if result is None:
            if execution.status == "running" and not self.printed:
                click.echo(f"running {execution.workflow_id} (execution {execution.id}, {total} tasks)")
                finished = [r for r in execution.tasks.values() if r.finished]
                for n, r in enumerate(finished, 1):
                    self._line(n, total, r)
            return
        if result.finished:
            self._line(done, total, result)

    def _line(self, done: int, total: int, r) -> None:
        if r.task_id in self.printed:
            return
        self.printed.add(r.task_id)
        width = len(str(total))
        extra = f"  {r.error}" if r.error and r.status in ("failed", "skipped") else ""
        click.echo(f"[{done:>{width}}/{total}] {r.status:<9} {r.task_id} ({fmt_duration(r.duration_s)}){extra}")


def print_letters(letters: list[dict]) -> None:
    """The count of dead letters and the last ten of them."""
    click.echo(f"dead letters: {len(letters)}")
    for letter in letters[-10:]:
        click.echo(f"  {letter.get('execution_id')} ({letter.get('domain')}): {letter.get('reason')}")


def print_dead_letters(gateway) -> None:
    """The cluster's dead-letter stream, for ``mlw status --redis``."""
    from mlflowdsl.runtime.cluster_mode.submission import queue_stats

    print_letters(queue_stats(gateway)["dead_letters"])
