"""The state backend interface.

The executor writes the execution header and task results as they change; ``mlw status``
and ``mlw run --resume`` read them from another process. The implementations are SQLite
under ``<home>/state.db`` (:mod:`.sqlite`, the default) and Redis for cluster mode
(:mod:`.redis`); :func:`mlflowdsl.runtime.state.factory.open_state` picks one.
"""

from __future__ import annotations

import abc
from typing import Iterable

from mlflowdsl.runtime.records import TaskResult, WorkflowExecution


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

    def save(self, execution: WorkflowExecution) -> None:
        """Header and every task result."""
        self.save_execution(execution)
        self.save_task_results(execution.id, execution.tasks.values())

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

