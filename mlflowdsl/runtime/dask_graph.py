"""Graph submission: the one module that uses Dask's private APIs.

``client.submit`` per task costs the scheduler a graph update each (ordering, a generation, a
message). The executor instead builds low-level graphs of many tasks and submits each with one
``client.get``, which needs three names Dask does not export publicly:

- ``dask._task_spec.Task`` -- a task of a low-level graph (key, function, arguments);
- ``dask._task_spec.TaskRef`` -- an argument standing for another task's result, by key;
- ``dask._expr.LLGExpr(dsk, _determ_token=...)`` -- a graph as an expression, named by the token
  given instead of one Dask computes by tokenizing (pickling and hashing) every task.

``tests/unit/test_dask_adapter.py`` checks these against the installed Dask, and
``pyproject.toml`` bounds Dask to the versions they are known to hold for.

Importing this module does not import Dask: the names are imported when first used.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable


def ref(future: Any) -> Any:
    """A task argument that stands for ``future``'s result: a reference to its key, not the
    future itself. A future inside a task's arguments travels to the scheduler, which keeps the
    task's spec; where the scheduler runs in the client's process (the embedded cluster, a
    notebook's ``LocalCluster``) the copy it unpickles is a live future of the same client, so
    every dependency would stay referenced -- and in memory on the workers -- after the run.
    The caller keeps the future itself until its dependents are done."""
    from dask._task_spec import TaskRef  # noqa: PLC0415 - heavy: dask only when a run submits

    return TaskRef(future.key)


class Graph:
    """Tasks to submit together as one low-level graph; dependencies are given by key, whether
    the task they name is in this graph or was submitted before."""

    __slots__ = ("_tasks", "_task", "_ref")

    def __init__(self) -> None:
        from dask._task_spec import Task, TaskRef  # noqa: PLC0415 - heavy: dask only when a run submits

        self._task, self._ref = Task, TaskRef
        self._tasks: dict[str, Any] = {}

    def add(self, key: str, func: Callable, *args: Any, deps: list[str] | tuple[str, ...] = ()) -> None:
        """``func(*args, *results of deps)`` under ``key``."""
        ref_ = self._ref
        self._tasks[key] = self._task(key, func, *args, *[ref_(k) for k in deps])

    def __len__(self) -> int:
        return len(self._tasks)

    def submit(self, client: Any, resources: dict[str, float] | None) -> list[Any]:
        """Submit the graph on ``client``; one future per task, in the order they were added."""
        from dask._expr import LLGExpr  # noqa: PLC0415 - heavy: dask only when a run submits

        keys = list(self._tasks)
        # As client.submit does: a random token, or Dask tokenizes every task of the graph
        # to name it.
        graph = LLGExpr(self._tasks, _determ_token=uuid.uuid4().hex)
        return client.get(graph, keys, sync=False, resources=resources)
