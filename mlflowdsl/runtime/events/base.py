"""The event model and the bus interface (the backends are its sibling modules; the
bus the settings select comes from :func:`mlflowdsl.runtime.events.factory.open_bus`).

An event is versioned JSON: ``event_id`` (uuid4, for de-duplication downstream),
``schema_version``, ``type``, ``time``, ``execution_id``, ``workflow_id``, ``instance_id`` and a
``payload``. ``EventBus.emit`` must never block a workflow for long nor raise into it: a
backend buffers, and drops (counting the drops) when it cannot keep up.

>>> e = Event.create("task.completed", execution_id="x1", workflow_id="w", payload={"task_id": "a"})
>>> e.type, e.schema_version
('task.completed', 1)
"""

from __future__ import annotations

import abc
import os
import random
import socket
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

EventType = Literal[
    "workflow.submitted", "workflow.started", "workflow.completed", "workflow.failed", "workflow.cancelled",
    "task.started", "task.completed", "task.failed", "task.retried", "task.cached", "task.skipped",
    "tuning.trial_completed",
    "leader.elected", "instance.joined", "instance.left", "shards.changed", "execution.cancel_requested",
    "model.registered", "model.promoted", "model.deployed",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# One id per process that emits events (an orchestrator instance in cluster mode).
DEFAULT_INSTANCE_ID = f"{socket.gethostname()}-{os.getpid()}"

# uuid4() reads os.urandom for every id, a visible cost at thousands of events a run; a PRNG
# seeded from urandom (again in a forked child) gives ids just as unique for de-duplication.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_event_id() -> str:
    """A random (version 4) UUID as 32 hex digits."""
    return uuid.UUID(int=_ids.getrandbits(128), version=4).hex


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    schema_version: int = SCHEMA_VERSION
    type: EventType
    time: float
    execution_id: str = ""  # empty for cluster events (leader, instances, shards)
    workflow_id: str = ""
    instance_id: str = DEFAULT_INSTANCE_ID
    payload: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(cls, type: str, *, execution_id: str = "", workflow_id: str = "", payload: dict[str, Any] | None = None,
               instance_id: str | None = None, at: float | None = None) -> "Event":
        return cls(event_id=new_event_id(), type=type, time=time.time() if at is None else at,
                   execution_id=execution_id, workflow_id=workflow_id,
                   instance_id=instance_id or DEFAULT_INSTANCE_ID, payload=payload or {})


class EventBus(abc.ABC):
    """Where events go. ``emit`` is non-blocking and never raises."""

    emitted: int = 0
    dropped: int = 0

    @abc.abstractmethod
    def emit(self, event: Event) -> None: ...

    def flush(self, timeout: float = 5.0) -> None:  # noqa: B027 - optional hook
        """Wait (bounded) until buffered events are written."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""


class NullBus(EventBus):
    def emit(self, event: Event) -> None:
        self.emitted += 1
