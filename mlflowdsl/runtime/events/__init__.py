"""Lifecycle events: the model and bus interface (:mod:`.base`), the JSONL and Kafka backends,
and :func:`open_bus` (:mod:`.factory`), which builds the bus the settings select."""

from mlflowdsl.runtime.events.base import EVENT_TYPES, Event, EventBus, NullBus
from mlflowdsl.runtime.events.factory import event_backends, open_bus

__all__ = ["EVENT_TYPES", "Event", "EventBus", "NullBus", "event_backends", "open_bus"]
