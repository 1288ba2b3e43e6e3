"""``mlw plan`` and ``mlw explain``: a plan held against the current cache and state.

For every task, what ``planning`` decides a run would do: ``cached`` (its entry is in a shared
cache), ``skipped`` (``when`` is false upstream or here) or ``will run``, with the reasons, found
by comparing the components of its cache key (``keyparts``) with the nearest previous record of
the same workflow and task: no entry; params changed; implementation version changed; input
changed upstream; cache version changed; TTL expired. Nothing runs and nothing is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mlflowdsl.errors import StateError
from mlflowdsl.ir import Plan
from mlflowdsl.runtime import planning
from mlflowdsl.runtime.keyparts import Change, compare, reasons
from mlflowdsl.runtime.planning import Contains, plan_run
from mlflowdsl.runtime.records import TaskResult, WorkflowExecution
from mlflowdsl.settings import Settings

HISTORY = 50  # how many previous executions of a workflow are searched for a task's last entry
ENTRY_STATUSES = ("succeeded", "cached")  # records whose key had (or came from) a cache entry


@dataclass(frozen=True)
class TaskPlan:
    task_id: str
    status: str  # "cached" | "will run" | "skipped"
    reasons: tuple[str, ...] = ()
    changes: tuple[Change, ...] = ()
    key: str = ""
    previous_execution: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "reasons": list(self.reasons),
                "changes": [c.as_dict() for c in self.changes], "key": self.key,
                "previous_execution": self.previous_execution}


@dataclass(frozen=True)
class Previous:
    execution_id: str
    result: TaskResult


@dataclass
class History:
    """The newest record with key components of every task, over a workflow's executions,
    and when each key's cache entry was written (the newest run that computed it: a later
    cache hit does not renew an entry's TTL)."""

    by_task: dict[str, Previous] = field(default_factory=dict)
    written: dict[str, float] = field(default_factory=dict)  # cache key -> end of the run that wrote it

    @classmethod
    def load(cls, state, workflow_id: str, *, before: WorkflowExecution | None = None,
             tasks: set[str] | None = None) -> "History":
        """``tasks``: stop reading older executions once all of these were found."""
        history = cls()
        for header in state.list_executions(limit=HISTORY, workflow_id=workflow_id):
            if before is not None and (header.id == before.id or header.created > before.created):
                continue
            execution = state.get_execution(header.id)
            for tid, r in execution.tasks.items():
                if tid not in history.by_task and r.key_components and r.status in ENTRY_STATUSES:
                    history.by_task[tid] = Previous(execution.id, r)
                if r.status == "succeeded" and r.cache_key and r.cache_key not in history.written:
                    history.written[r.cache_key] = r.ended or r.started or execution.created
            if tasks is not None and tasks <= set(history.by_task) and all(
                    p.result.cache_key in history.written for p in history.by_task.values()):
                break
        return history


TUNED = "tuned: its study runs again (trials already run come from the cache)"


def _changes(previous: TaskResult, components: dict[str, Any]) -> tuple[Change, ...]:
    """What changed since ``previous``; nothing when the keys are equal (a record written by
    an older mlw may lack a component the key already covered)."""
    if previous.cache_key and previous.cache_key == components.get("key"):
        return ()
    return tuple(compare(previous.key_components or {}, components))


def why_run(task, components: dict[str, Any], previous: Previous | None, now: float,
            written_at: dict[str, float] | None = None) -> tuple[tuple[str, ...], tuple[Change, ...]]:
    if task.cache.off:
        return (f"caching is off (strategy {task.cache.strategy})",), ()
    if previous is None:
        return ("no entry",), ()
    changes = _changes(previous.result, components)
    if changes:
        return tuple(reasons(list(changes))), changes
    if "tuning" in components:
        # the best trial's output is cached under the trial's own key, not the tuned task's
        return (TUNED,), ()
    ttl = task.cache.ttl
    written = (written_at or {}).get(components.get("key", ""))
    if written is None:
        written = previous.result.ended or previous.result.started
    if ttl is not None and written is not None and written + ttl <= now:
        return (f"TTL expired (the entry is {now - written:.0f}s old, its TTL {ttl:g}s)",), ()
    if task.cache.strategy == "memory":
        return ("no entry (the memory cache lasts one run)",), ()
    return (f"no entry (same key as execution {previous.execution_id}: the entry was evicted or cleared)",), ()


def plan_status(plan: Plan, *, base_dir: str, contains: Contains, history: History,
                now: float | None = None, fingerprint: Callable[[str], str] | None = None) -> list[TaskPlan]:
    """The plan's tasks in order with what a run would do to each (``planning``'s decision,
    with the reasons a task would run); ``fingerprint``: ``datafp.Fingerprinter``."""
    now = time.time() if now is None else now
    d = plan_run(plan, base_dir, None, contains, fingerprint)
    out: list[TaskPlan] = []
    for task in plan.tasks:
        key = d.keys[task.id]
        prev = history.by_task.get(task.id)
        prev_id = prev.execution_id if prev else None
        if task.id in d.skipped:
            out.append(TaskPlan(task.id, "skipped", (d.skipped[task.id],), key=key, previous_execution=prev_id))
        elif task.id in d.cached:
            out.append(TaskPlan(task.id, "cached", key=key, previous_execution=prev_id))
        else:
            why, changes = why_run(task, d.components[task.id], prev, now, history.written)
            out.append(TaskPlan(task.id, "will run", why, changes, key, prev_id))
    return out


def cache_probe(settings: Settings) -> Contains:
    """``contains(strategy, key)`` over the real caches; a cache that cannot be asked is a
    miss, as it is at run time."""
    return planning.cache_probe(settings, errors_are_misses=True)


@dataclass(frozen=True)
class Explanation:
    execution_id: str
    task_id: str
    outcome: str  # "hit" | "miss" | "ran" | "skipped" | "failed" ...
    summary: str
    changes: tuple[Change, ...] = ()
    previous_execution: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"execution_id": self.execution_id, "task_id": self.task_id, "outcome": self.outcome,
                "summary": self.summary, "changes": [c.as_dict() for c in self.changes],
                "previous_execution": self.previous_execution}


def explain(state, execution_id: str, task_id: str) -> Explanation:
    """Why ``task_id`` of an execution hit or missed the cache (field-by-field)."""
    execution = state.get_execution(execution_id)
    if task_id not in execution.tasks:
        raise StateError(f"execution {execution.id} has no task {task_id!r}",
                         hint="its tasks are: " + ", ".join(sorted(execution.tasks)))
    record = execution.tasks[task_id]
    if not record.key_components:
        raise StateError(f"task {task_id!r} of execution {execution.id} has no recorded key components",
                         hint="it ran with an older mlw; run the workflow again and explain the new execution")
    prev = History.load(state, execution.workflow_id, before=execution).by_task.get(task_id)
    changes = _changes(prev.result, record.key_components) if prev else ()
    prev_id = prev.execution_id if prev else None
    key = (record.cache_key or "")[:12]
    if record.status == "skipped":
        return Explanation(execution.id, task_id, "skipped", f"skipped: {record.error}", changes, prev_id)
    if record.cached:
        since = f"since execution {prev_id}" if prev_id else "since the entry was written"
        return Explanation(execution.id, task_id, "hit",
                           f"cache hit: key {key} was in the cache; no component of it changed {since}",
                           changes, prev_id)
    if record.status == "pending" or record.status == "running":
        return Explanation(execution.id, task_id, record.status, f"{record.status}: not finished yet", changes, prev_id)
    if prev is None:
        summary = "cache miss: no earlier entry for this task (first run of it in this workflow)"
    elif changes:
        summary = f"cache miss: key {key} differs from execution {prev_id}'s: " + "; ".join(reasons(list(changes)))
    elif "tuning" in record.key_components:
        summary = f"tuned: same key as execution {prev_id}; its study ran again (trials already run came from the cache)"
    else:
        summary = (f"cache miss: same key as execution {prev_id}, but its entry was gone "
                   "(TTL expired, evicted or cleared, or caching is off)")
    return Explanation(execution.id, task_id, "miss", summary, changes, prev_id)
