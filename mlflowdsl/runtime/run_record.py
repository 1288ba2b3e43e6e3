"""The execution record of a run in flight, and where it goes.

:class:`RunRecord` owns the run's ``WorkflowExecution``: it updates task records in place,
writes them to the state backend in batches, emits lifecycle events on the event bus and tells
the listener. :func:`initial_execution` makes the record a run starts from (its tasks as
decided by ``planning``), :func:`finished_result` the record a task's result message makes.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

from mlflowdsl.ir import Plan
from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.runtime.planning import Decision
from mlflowdsl.runtime.records import AttemptError, AttemptUsage, TaskResult, WorkflowExecution
from mlflowdsl.runtime.state.base import StateBackend
from mlflowdsl.runtime.usage import summarize

Listener = Callable[[WorkflowExecution, TaskResult | None], None]


def initial_execution(plan: Plan, decision: Decision, *, resume: WorkflowExecution | None,
                      execution_id: str | None, keep_going: bool, state: StateBackend) -> WorkflowExecution:
    """The running execution with a record for every task: carried over from ``resume``,
    skipped, cached (metrics and artifacts of the run that computed the entry) or pending."""
    d, now = decision, time.time()
    if resume is not None:
        execution = resume.advance("running", restart=True, ended=None, error=None, started=now)
    else:
        execution = WorkflowExecution(
            id=execution_id or uuid.uuid4().hex[:12], workflow_id=plan.workflow.id,
            workflow_name=plan.workflow.name, plan_fingerprint=plan.fingerprint or plan.compute_fingerprint(),
            plan_json=plan.model_dump_json(), params=dict(plan.workflow.params),
            source=plan.workflow.source, keep_going=keep_going, created=now,
        ).advance("running", started=now)
    tasks: dict[str, TaskResult] = {}
    origin = state.computed_results(d.keys[t] for t in d.cached) if d.cached else {}
    for t in plan.tasks:
        key = d.keys[t.id]
        parts = d.components.get(t.id)
        if t.id in d.carried and resume is not None:
            tasks[t.id] = resume.tasks[t.id]
        elif t.id in d.skipped:
            tasks[t.id] = TaskResult(task_id=t.id, status="skipped", error=d.skipped[t.id], cache_key=key,
                                     key_components=parts)
        elif t.id in d.cached:
            source = origin.get(key)
            tasks[t.id] = TaskResult(task_id=t.id, status="cached", cached=True, cache_key=key, duration_s=0.0,
                                     metrics=source.metrics if source else {},
                                     artifacts=source.artifacts if source else {},
                                     outcome=source.outcome if source else {},
                                     study=source.study if source else None, key_components=parts)
        else:
            tasks[t.id] = TaskResult(task_id=t.id, cache_key=key, key_components=parts)
    return execution.model_copy(update={"tasks": tasks})


def usage_fields(usage: list[dict[str, Any]]) -> dict[str, Any]:
    """The record's resource fields from a result message's per-attempt usage."""
    if not usage:
        return {}
    return {"usage": [AttemptUsage(**u) for u in usage], **summarize(usage)}


def finished_result(current: TaskResult, meta: dict[str, Any]) -> TaskResult:
    """``current`` finished as the result message ``meta`` says."""
    status = meta["status"]
    started = meta.get("started") or current.started
    ended = meta.get("ended") or time.time()
    return current.advance(
        status, attempts=meta.get("attempts", 0),
        attempt_errors=[AttemptError(**e) for e in meta.get("attempt_errors", [])],
        started=started, ended=ended,
        duration_s=(ended - started) if started and status != "cached" else (0.0 if status == "cached" else None),
        metrics=meta.get("metrics") or {}, artifacts=meta.get("artifacts") or {},
        outcome=meta.get("outcome") or {}, cached=bool(meta.get("cached")), error=meta.get("error"),
        worker=meta.get("worker") or current.worker, study=meta.get("study") or current.study,
        **usage_fields(meta.get("usage") or []),
    )


TASK_EVENTS = {"succeeded": "task.completed", "cached": "task.cached", "failed": "task.failed",
               "skipped": "task.skipped"}
WORKFLOW_EVENTS = {"succeeded": "workflow.completed", "failed": "workflow.failed",
                   "cancelled": "workflow.cancelled"}


class RunRecord:
    """The run's execution record: task records are updated in place (this run owns it, and
    copying the task map on every update would cost O(tasks) per message) and written to
    ``state`` by :meth:`flush`, only those changed since the last one."""

    def __init__(self, execution: WorkflowExecution, state: StateBackend, bus: EventBus,
                 listener: Listener | None, owner_check: Callable[[], bool] | None = None) -> None:
        self.execution = execution
        self.state = state
        self.bus = bus
        self.listener = listener
        self.dirty: set[str] = set()
        # Cluster mode: events wait for the next state write and go out only if this instance
        # still owned the execution then (its writes are fenced), so an owner that stalled and
        # was replaced emits nothing of what it does after waking up.
        self.owner_check = owner_check
        self.held: list[Event] = []

    @property
    def tasks(self) -> dict[str, TaskResult]:
        return self.execution.tasks

    def emit(self, type: str, payload: dict[str, Any] | None = None, *, at: float | None = None) -> None:
        event = Event.create(type, execution_id=self.execution.id, at=at,
                             workflow_id=self.execution.workflow_id, payload=payload or {})
        if self.owner_check is None:
            self.bus.emit(event)
        else:
            self.held.append(event)

    def release_events(self) -> None:
        """Emit the held events if the execution is still ours, else drop them."""
        if not self.held:
            return
        held, self.held = self.held, []
        if self.owner_check is not None and self.owner_check():
            for event in held:
                self.bus.emit(event)

    def update(self, result: TaskResult) -> None:
        self.execution.tasks[result.task_id] = result
        self.dirty.add(result.task_id)
        if self.listener:
            self.listener(self.execution, result)

    def skip(self, tid: str, why: str) -> None:
        """Record an unfinished task as skipped for ``why``, with its event."""
        self.update(self.execution.tasks[tid].advance("skipped", error=why))
        self.emit("task.skipped", {"task_id": tid, "error": why})

    def notify(self) -> None:
        """Tell the listener about the execution itself (its start and its end)."""
        if self.listener:
            self.listener(self.execution, None)

    def flush(self, *, header: bool = False) -> None:
        if header:
            self.state.save_execution(self.execution)
        if self.dirty:
            self.state.save_task_results(self.execution.id, [self.execution.tasks[t] for t in self.dirty])
            self.dirty.clear()
        self.release_events()

    def start(self, decision: Decision) -> None:
        """Write the execution and emit the events of its start and of the tasks decided up front."""
        ex = self.execution
        self.flush(header=True)
        # Task rows go with the first periodic flush: writing hundreds of pending rows before
        # submitting would delay every task of the run.
        self.dirty.update(ex.tasks)
        self.emit("workflow.submitted", {"tasks": len(ex.tasks), "plan_fingerprint": ex.plan_fingerprint})
        self.emit("workflow.started", {"run": len(decision.run), "cached": len(decision.cached),
                                       "carried": len(decision.carried)})
        for tid in sorted(decision.cached):
            self.emit("task.cached", {"task_id": tid, "cache_key": decision.keys[tid]})
        for tid, why in sorted(decision.skipped.items()):
            self.emit("task.skipped", {"task_id": tid, "error": why})
        self.notify()

    def close(self, status: str, error: str | None) -> WorkflowExecution:
        """End the execution with ``status``: written, announced, returned."""
        self.execution = self.execution.advance(status, ended=time.time(), error=error)
        self.flush(header=True)
        self.emit(WORKFLOW_EVENTS[status], {"status": status, "error": error, "counts": self.execution.counts(),
                                            "duration_s": self.execution.duration_s})
        self.release_events()
        self.notify()
        return self.execution
