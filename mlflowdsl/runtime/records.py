"""Execution records: what happened to a workflow run and to each of its tasks.

``WorkflowExecution`` and ``TaskResult`` are pydantic models stored by a state backend
(``mlflowdsl.runtime.state``). They are frozen: updates make new records through
``advance``, which refuses to move a status backwards (a task never goes from ``failed``
back to ``running`` within one execution; ``--resume`` is the one place that starts a
finished task again, and it says so explicitly with ``restart=True``).

>>> r = TaskResult(task_id="a")
>>> r = r.advance("running")
>>> r.advance("succeeded").status
'succeeded'
>>> r.advance("pending")
Traceback (most recent call last):
...
mlflowdsl.errors.StateError: task 'a': cannot go from running to pending
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlflowdsl.errors import StateError

TaskStatus = Literal["pending", "running", "succeeded", "cached", "failed", "skipped"]
ExecutionStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]

TASK_TERMINAL: frozenset[str] = frozenset({"succeeded", "cached", "failed", "skipped"})
EXECUTION_TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
_RANK = {"pending": 0, "running": 1}  # every terminal status ranks 2


def _rank(status: str) -> int:
    return _RANK.get(status, 2)


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AttemptError(Record):
    """One failed attempt: kept for every attempt, not only the last."""

    attempt: int
    type: str  # exception class name, e.g. "ValueError" or "TimeoutError"
    message: str
    traceback: str = ""
    retryable: bool = True
    time: float = Field(default_factory=time.time)


class AttemptUsage(Record):
    """Resource use of one attempt (``mlflowdsl.runtime.usage``): process-level numbers of
    the worker that ran it, so tasks running side by side on one worker share them."""

    attempt: int
    wall_s: float
    cpu_s: float
    peak_rss: int  # bytes
    worker: str | None = None


class TaskResult(Record):
    task_id: str
    status: TaskStatus = "pending"
    attempts: int = 0
    attempt_errors: list[AttemptError] = Field(default_factory=list)
    started: float | None = None  # unix time of the first attempt's start
    ended: float | None = None
    duration_s: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
    cache_key: str | None = None
    cached: bool = False
    error: str | None = None  # the final error (or why the task was skipped)
    worker: str | None = None
    # A tuned task's study: best value and params, trial table, importances (runtime/tuning/study.py)
    study: dict[str, Any] | None = None
    # What the task decided (TaskOutputs.outcome), e.g. a comparison's winner
    outcome: dict[str, Any] = Field(default_factory=dict)
    # Resource use (mlflowdsl.runtime.usage): per attempt, and totals (CPU summed, peak the highest).
    usage: list[AttemptUsage] = Field(default_factory=list)
    cpu_s: float | None = None
    peak_rss: int | None = None  # bytes
    # What the cache key was made of (mlflowdsl.runtime.keyparts): `mlw plan`/`explain`
    # compare it with a later plan to say which field changed.
    key_components: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in TASK_TERMINAL

    def advance(self, status: TaskStatus, *, restart: bool = False, **changes: Any) -> "TaskResult":
        """A copy with a new status (and other fields); never backwards unless ``restart``."""
        if not restart and _rank(status) < _rank(self.status):
            raise StateError(f"task {self.task_id!r}: cannot go from {self.status} to {status}")
        if not restart and self.finished and status != self.status:
            raise StateError(f"task {self.task_id!r}: already {self.status}, cannot become {status}")
        return self.model_copy(update={"status": status, **changes})


class WorkflowExecution(Record):
    id: str
    workflow_id: str
    workflow_name: str = ""
    plan_fingerprint: str = ""
    plan_json: str = ""  # the plan as run, so `--resume` does not need the source file
    params: dict[str, Any] = Field(default_factory=dict)
    status: ExecutionStatus = "pending"
    created: float = Field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    source: str | None = None  # the workflow file, as given
    keep_going: bool = False
    error: str | None = None
    tasks: dict[str, TaskResult] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in EXECUTION_TERMINAL

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    def advance(self, status: ExecutionStatus, *, restart: bool = False, **changes: Any) -> "WorkflowExecution":
        if not restart and _rank(status) < _rank(self.status):
            raise StateError(f"execution {self.id}: cannot go from {self.status} to {status}")
        if not restart and self.finished and status != self.status:
            raise StateError(f"execution {self.id}: already {self.status}, cannot become {status}")
        return self.model_copy(update={"status": status, **changes})

    def with_tasks(self, results: dict[str, TaskResult]) -> "WorkflowExecution":
        return self.model_copy(update={"tasks": {**self.tasks, **results}})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.tasks.values():
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        """The ``mlw run --json`` shape."""
        return {
            "execution_id": self.id,
            "workflow_id": self.workflow_id,
            "status": self.status,
            "duration_s": self.duration_s,
            "tasks": {
                tid: {
                    "status": r.status,
                    "attempts": r.attempts,
                    "duration_s": r.duration_s,
                    "cached": r.cached,
                    "metrics": r.metrics,
                    "error": r.error,
                    **({"study": r.study} if r.study else {}),
                    **({"outcome": r.outcome} if r.outcome else {}),
                }
                for tid, r in self.tasks.items()
            },
        }
