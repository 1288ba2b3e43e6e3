"""The event model and the bus interface.

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

from mlflowdsl.settings import Settings

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

# uuid4() reads os.urandom for every id (~0.1 ms on some VMs, a visible cost at thousands of
# events per run); a PRNG seeded from urandom gives ids just as unique for de-duplication.
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


BACKENDS = ("jsonl", "kafka")


def event_backends(settings: Settings) -> tuple[str, ...]:
    """The backends the settings select: ``events`` ("jsonl", "kafka", "jsonl,kafka", "none");
    unset means JSONL, plus Kafka when ``kafka_bootstrap`` (``MLW_KAFKA_BOOTSTRAP``) is set.

    >>> event_backends(Settings()), event_backends(Settings(kafka_bootstrap="k:9092"))
    (('jsonl',), ('jsonl', 'kafka'))
    """
    from mlflowdsl.errors import ConfigError

    raw = getattr(settings, "events", None)
    if raw is None or str(raw).strip() == "":
        return ("jsonl", "kafka") if settings.kafka_bootstrap else ("jsonl",)
    names = tuple(dict.fromkeys(n.strip().lower() for n in str(raw).replace("+", ",").split(",") if n.strip()))
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown event backend {unknown[0]!r} in events = {raw!r}", subject="events (MLW_EVENTS)",
                          hint="use jsonl, kafka, jsonl,kafka or none")
    if "kafka" in names and not settings.kafka_bootstrap:
        raise ConfigError("events include kafka but no broker is set", subject="kafka_bootstrap (MLW_KAFKA_BOOTSTRAP)",
                          hint="set kafka_bootstrap = \"host:9092\" or drop kafka from events")
    return names


def open_bus(settings: Settings) -> EventBus:
    """The bus the settings select (see :func:`event_backends`); several backends fan out."""
    buses: list[EventBus] = []
    for name in event_backends(settings):
        if name == "jsonl":
            from mlflowdsl.runtime.events.jsonl import JsonlBus

            buses.append(JsonlBus(settings.home_path / "events.jsonl", capacity=settings.events_queue_capacity))
        else:
            from mlflowdsl.runtime.events.kafka import KafkaBus

            buses.append(KafkaBus.from_settings(settings))
    if not buses:
        return NullBus()
    if len(buses) == 1:
        return buses[0]
    from mlflowdsl.runtime.events.multi import MultiBus

    return MultiBus(buses)
