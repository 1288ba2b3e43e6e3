"""The state backend interface.

The executor writes the execution header and task results as they change; ``mlw status``
and ``mlw run --resume`` read them from another process. The implementations are SQLite
under ``<home>/state.db`` (:mod:`.sqlite`, the default) and Redis for cluster mode
(:mod:`.redis`); :func:`mlflowdsl.runtime.state.factory.open_state` picks one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Iterable

from mlflowdsl.runtime.records import TaskResult, WorkflowExecution


@dataclass(frozen=True)
class AttemptLog:
    """What one attempt printed and logged (``mlflowdsl.runtime.logcapture``): the last
    ``attempt_log_bytes`` of it in ``text``; ``total`` counts every byte it wrote."""

    task_id: str
    attempt: int
    text: str
    total: int
    updated: float | None = None

    @property
    def truncated(self) -> bool:
        return self.total > len(self.text.encode("utf-8", "replace"))

    def as_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt, "text": self.text, "total": self.total,
                "truncated": self.truncated, "updated": self.updated}


def keep_tail(old: bytes, new: bytes, limit: int) -> bytes:
    """``old + new`` cut to its last ``limit`` bytes (the bound of an attempt's log).

    >>> keep_tail(b"abc", b"def", 4)
    b'cdef'
    """
    data = old + new
    return data[-limit:] if len(data) > limit else data


class StateBackend(abc.ABC):
    """Stores ``WorkflowExecution`` records and their ``TaskResult``s."""

    @abc.abstractmethod
    def save_execution(self, execution: WorkflowExecution) -> None:
        """Insert or update the execution's header (everything but ``tasks``)."""

    @abc.abstractmethod
    def save_task_results(self, execution_id: str, results: Iterable[TaskResult]) -> None:
        """Insert or update task results (one transaction for the batch)."""

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> WorkflowExecution:
        """The execution with all its task results; ``StateError`` when unknown.
        A unique prefix of the id is accepted, like git's short hashes."""

    @abc.abstractmethod
    def list_executions(self, *, limit: int = 20, workflow_id: str | None = None) -> list[WorkflowExecution]:
        """Newest first, without task results (``tasks`` is empty) and without the plan."""

    def computed_results(self, cache_keys: Iterable[str]) -> dict[str, TaskResult]:
        """For each cache key, the latest ``succeeded`` result that computed it (so a cache hit
        can show the metrics of the run that produced the entry). Optional: default none."""
        return {}

    # ---------------------------------------------------------------- attempt logs (optional)

    def log_target(self) -> dict[str, Any] | None:
        """Where a worker writes attempt logs for this store (travels in the task's spec);
        ``None``: this store keeps no logs and workers capture nothing."""
        return None

    def append_attempt_log(self, execution_id: str, task_id: str, attempt: int, data: bytes, *,
                           limit: int, dropped: int = 0) -> None:
        """Append ``data`` to an attempt's log, keeping its last ``limit`` bytes; ``dropped``
        counts bytes the worker already cut (they add to the total, not to the text)."""

    def attempt_logs(self, execution_id: str, task_id: str | None = None,
                     attempt: int | None = None) -> list[AttemptLog]:
        """The logs of an execution's attempts, by task (plan order when known) then attempt."""
        return []

    # ---------------------------------------------------------------- queries of the UI (optional)

    def page_executions(self, *, offset: int = 0, limit: int = 50, workflow_id: str | None = None,
                        status: str | None = None) -> tuple[list[WorkflowExecution], int]:
        """One page of executions (newest first, headers only) and how many match in all.
        This default reads every header; a backend with an index does better."""
        found = [e for e in self.list_executions(limit=10**9, workflow_id=workflow_id)
                 if status is None or e.status == status]
        return found[offset:offset + limit], len(found)

    def workflow_ids(self) -> list[str]:
        """Every workflow id with an execution, sorted."""
        return sorted({e.workflow_id for e in self.list_executions(limit=10**9)})

    def task_counts(self, execution_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Per execution, how many of its tasks have each status (the progress of a list)."""
        return {i: self.get_execution(i).counts() for i in execution_ids}

    def task_statuses(self, execution_id: str) -> tuple[str, dict[str, tuple[str, int]]]:
        """The execution's status and each task's (status, attempts): what a live page polls."""
        e = self.get_execution(execution_id)
        return e.status, {t: (r.status, r.attempts) for t, r in e.tasks.items()}

    def studies(self, *, limit: int = 100) -> list[tuple[str, TaskResult]]:
        """(execution id, task result) of the latest tuned tasks that have a study, newest first."""
        out = []
        for header in self.list_executions(limit=limit):
            out += [(header.id, r) for r in self.get_execution(header.id).tasks.values() if r.study]
        return out[:limit]

    def save(self, execution: WorkflowExecution) -> None:
        """Header and every task result."""
        self.save_execution(execution)
        self.save_task_results(execution.id, execution.tasks.values())

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

