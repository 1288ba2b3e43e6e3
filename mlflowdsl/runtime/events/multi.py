"""Fan-out to several backends (``events = "jsonl,kafka"``): each keeps its own bounded
queue and counters, so a dead broker never holds up the JSONL file, nor the other way round.

>>> from mlflowdsl.runtime.events.base import NullBus, Event
>>> bus = MultiBus([NullBus(), NullBus()])
>>> bus.emit(Event.create("task.started", execution_id="x", workflow_id="w"))
>>> bus.emitted, [b.emitted for b in bus.buses]
(1, [1, 1])
"""

from __future__ import annotations

import time

from mlflowdsl.runtime.events.base import Event, EventBus


class MultiBus(EventBus):
    def __init__(self, buses: list[EventBus]):
        self.buses = list(buses)
        self.emitted = 0

    @property
    def dropped(self) -> int:  # type: ignore[override]
        """Drops summed over the backends (an event dropped by both counts twice)."""
        return sum(b.dropped for b in self.buses)

    def emit(self, event: Event) -> None:
        self.emitted += 1
        for bus in self.buses:
            bus.emit(event)

    def flush(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for bus in self.buses:
            bus.flush(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        for bus in self.buses:
            bus.close()
