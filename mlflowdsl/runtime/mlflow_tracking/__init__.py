"""MLflow tracking of executions: on when a tracking URI is set (setting ``mlflow_tracking_uri``,
env ``MLW_MLFLOW_TRACKING_URI``, ``mlw run --mlflow URI``, or MLflow's own ``MLFLOW_TRACKING_URI``).

The run loop's listener hands finished task records to :class:`Tracker`, which queues them for
one background thread: the MLflow calls happen off the task path and off the run loop, and a
slow or dead tracking server cannot slow a task. When the execution ends, :meth:`Tracker.finish`
logs what is left, waits for the thread (at most ``mlflow_flush_timeout_s``), and warns once if
anything could not be logged. ``mlw mlflow sync EXECUTION_ID`` (:func:`sync_execution`) logs an
execution from the state store, skipping the runs already there.

docs/mlflow.md lists what lands where.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Callable

from mlflowdsl.errors import StateError
from mlflowdsl.ir import Plan
from mlflowdsl.runtime.mlflow_tracking.writer import ExecutionWriter, ReportRenderer, Summary
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution

log = logging.getLogger(__name__)

__all__ = ["Tracker", "Summary", "open_tracker", "sync_execution", "tracking_uri", "set_report_renderer"]

_REPORT: list[ReportRenderer] = []


def set_report_renderer(render: ReportRenderer | None) -> None:
    """The HTML report attached to each parent run (the report layer sits above the runtime,
    so the front end that has it hands it in: ``mlw run`` and ``mlw mlflow sync`` do)."""
    _REPORT.clear()
    if render is not None:
        _REPORT.append(render)


def tracking_uri(settings: Any) -> str | None:
    """The tracking URI in force: the setting, else ``MLFLOW_TRACKING_URI``; None = tracking off."""
    uri = getattr(settings, "mlflow_tracking_uri", None) or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri or uri.strip().lower() in ("off", "none"):
        return None
    return uri.strip()


def experiment_name(settings: Any, plan: Plan) -> str:
    return getattr(settings, "mlflow_experiment", None) or plan.workflow.id


class Tracker:
    """Feeds one execution's records to an :class:`ExecutionWriter` on a background thread."""

    def __init__(self, writer: ExecutionWriter, *, flush_timeout_s: float = 120.0):
        self.writer = writer
        self.flush_timeout_s = flush_timeout_s
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.queued: set[str] = set()
        self.started = False
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, name="mlw-mlflow", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            kind, execution, result = self.queue.get()
            if kind == "stop":
                return
            try:
                if kind == "start":
                    self.writer.start(execution)
                elif kind == "task":
                    self.writer.task(execution, result)
            except Exception:  # noqa: BLE001 - a bug here must not take the run down; it is logged
                log.exception("MLflow tracking: %s of %s", kind, getattr(result, "task_id", execution.id))

    def listener(self, inner: Callable[[WorkflowExecution, TaskResult | None], None] | None):
        """A run listener that queues what it sees for MLflow, then calls ``inner``."""
        def listen(execution: WorkflowExecution, result: TaskResult | None) -> None:
            if result is None and not self.started:
                self.started = True
                self.queue.put(("start", execution, None))
            elif result is not None and result.finished and result.task_id not in self.queued:
                self.queued.add(result.task_id)
                self.queue.put(("task", execution, result))
            if inner is not None:
                inner(execution, result)
        return listen

    def close(self) -> None:
        """Stop the thread (without waiting): the run ended, by :meth:`finish` or an error."""
        if not self.stopped:
            self.stopped = True
            self.queue.put(("stop", None, None))

    def finish(self, execution: WorkflowExecution) -> Summary:
        """Log the rest and the parent run's end; wait for the thread; warn once on a failure."""
        if not self.started:
            self.started = True
            self.queue.put(("start", execution, None))
        self.close()
        self.thread.join(self.flush_timeout_s)
        if self.thread.is_alive():
            summary = Summary(uri=self.writer.uri, experiment=self.writer.experiment,
                              parent_run_id=self.writer.parent_run_id, logged=self.writer.logged,
                              not_logged=len(execution.tasks) - len(self.writer.task_runs),
                              error=f"not done after {self.flush_timeout_s:g} s (mlflow_flush_timeout_s)")
        else:
            summary = self.writer.finish(execution)
        message = summary.warning(execution.id)
        if message:
            log.warning("%s", message)
        return summary


def _writer(settings: Any, plan: Plan, uri: str, base_dir: str) -> ExecutionWriter:
    return ExecutionWriter(uri, experiment_name(settings, plan), plan, settings=settings, base_dir=base_dir,
                           log_models=getattr(settings, "mlflow_log_models", True),
                           report=_REPORT[0] if _REPORT else None)


def open_tracker(settings: Any, plan: Plan, base_dir: str) -> Tracker | None:
    """A tracker for one execution of ``plan``, or None when tracking is off."""
    uri = tracking_uri(settings)
    if uri is None:
        return None
    return Tracker(_writer(settings, plan, uri, base_dir),
                   flush_timeout_s=float(getattr(settings, "mlflow_flush_timeout_s", 120.0)))


def sync_execution(execution: WorkflowExecution, settings: Any) -> Summary:
    """Log a finished execution (from the state store) to MLflow, skipping what is there."""
    uri = tracking_uri(settings)
    if uri is None:
        raise StateError("no MLflow tracking URI is set", subject="mlflow_tracking_uri",
                         hint="pass --mlflow URI, or set MLW_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI")
    if not execution.plan_json:
        raise StateError(f"execution {execution.id} has no stored plan", hint="run the workflow again with tracking on")
    plan = Plan.from_json(execution.plan_json)
    source = execution.source
    base = os.path.dirname(os.path.abspath(source)) if source else os.getcwd()
    writer = _writer(settings, plan, uri, base)
    writer.start(execution)
    summary = writer.finish(execution)
    return summary
