"""One long-lived bus per process for events that happen outside a workflow run (model
registered, promoted, deployed; tuning trials): opening a Kafka producer per event would
cost a connection each time. ``emit_now`` emits and waits briefly (``flush_s``) for delivery,
never on a broker known to be down; the buses are closed at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading

from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.runtime.events.factory import event_backends, open_bus
from mlflowdsl.runtime.events.kafka import KafkaBus
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

_buses: dict[tuple, EventBus] = {}
_lock = threading.Lock()


def process_bus(settings: Settings) -> EventBus:
    key = (str(settings.home_path.resolve()), event_backends(settings), settings.kafka_bootstrap, settings.kafka_topic)
    with _lock:
        bus = _buses.get(key)
        if bus is None:
            bus = _buses[key] = open_bus(settings)
        return bus


def emit_now(settings: Settings | None, event: Event, *, flush_s: float = 0.5) -> None:
    """Emit ``event`` on the process bus for ``settings``; never raises (events are a side
    channel: a bad setting or a dead broker must not fail a registration)."""
    if settings is None:
        return
    try:
        bus = process_bus(settings)
        bus.emit(event)
        for sub in getattr(bus, "buses", [bus]):
            if isinstance(sub, KafkaBus):
                sub.flush(flush_s, while_reachable=True)
            else:
                sub.flush(flush_s)
    except Exception as exc:  # noqa: BLE001
        log.warning("event %s not emitted: %s", event.type, exc)


@atexit.register
def _close_all() -> None:
    with _lock:
        buses = list(_buses.values())
        _buses.clear()
    for bus in buses:
        try:
            bus.close()
        except Exception as exc:  # noqa: BLE001 - at exit: one bus failing to close must not stop the others
            log.debug("closing an event bus at exit: %s", exc)
