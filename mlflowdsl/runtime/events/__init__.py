"""Lifecycle events: the model, the bus interface and the JSONL backend."""

from mlflowdsl.runtime.events.base import EVENT_TYPES, Event, EventBus, NullBus, open_bus

__all__ = ["EVENT_TYPES", "Event", "EventBus", "NullBus", "open_bus"]
