"""Coordination events between orchestrator instances (over Kafka).

Instances publish ``instance.joined|left``, ``leader.elected``, ``shards.changed`` and
``mlw cancel`` publishes ``execution.cancel_requested``. Every instance follows the event
topic with a :class:`CoordinationListener` (assigned partitions, from "now": no consumer
group, so joining costs no rebalance wait), keeps only coordination types (read from the
``type`` header without parsing the rest), de-duplicates on ``event_id`` and hands each
event to a handler once.

Redis stays the source of truth: an event only makes an instance act *sooner* (re-read
the shard map now, stop a cancelled execution now instead of at the next poll). A lost or
late event delays; it never changes what Redis says.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from mlflowdsl.runtime.events.base import Event
from mlflowdsl.runtime.events.factory import event_backends
from mlflowdsl.runtime.events.kafka import KafkaBus, client_config, ensure_topic
from mlflowdsl.runtime.events.schema import COORDINATION_TYPES
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)


class SeenIds:
    """The last ``size`` event ids, for de-duplication (``add`` is False for a repeat).

    >>> seen = SeenIds(2)
    >>> seen.add("a"), seen.add("a"), seen.add("b"), seen.add("c"), seen.add("a")
    (True, False, True, True, True)
    """

    def __init__(self, size: int = 10_000):
        self.size = size
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()

    def add(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


def kafka_enabled(settings: Settings) -> bool:
    try:
        return "kafka" in event_backends(settings)
    except Exception:  # noqa: BLE001 - a bad events setting is reported where the bus is opened
        return False


def publish(settings: Settings, event: Event, *, timeout: float = 3.0) -> bool:
    """Publish one event now (for one-shot commands such as ``mlw cancel``); True when the
    broker acknowledged it. Without Kafka in the settings this does nothing."""
    if not kafka_enabled(settings):
        return False
    bus = KafkaBus.from_settings(settings)
    try:
        bus.emit(event)
        return bus.flush(timeout, while_reachable=True)
    finally:
        bus.close()


class CoordinationListener:
    """Follows the event topic in a daemon thread and calls ``handler(event)`` once per
    coordination event (by ``event_id``). Survives broker outages: it reconnects every
    ``retry_s`` and, after a broker restart, re-reads the partitions from their start
    (de-duplication drops what it saw already)."""

    def __init__(self, settings: Settings, handler: Callable[[Event], None], *, retry_s: float = 1.0,
                 types: frozenset[str] = COORDINATION_TYPES):
        self.config = client_config(settings)
        self.topic = settings.kafka_topic
        self.handler = handler
        self.retry_s = retry_s
        self.types = {t.encode() for t in types}
        self.seen = SeenIds()
        self.handled = 0
        self.ready = threading.Event()  # set once positioned at the end of the topic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlw-coordination-events", daemon=True)

    def start(self) -> CoordinationListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            consumer = None
            try:
                consumer = self._open(from_end=first)
                first = False
                self.ready.set()
                while not self._stop.is_set():
                    for records in consumer.poll(timeout_ms=200).values():
                        for record in records:
                            self._deliver(record)
            except Exception as exc:  # noqa: BLE001 - broker away: retry later, never die
                log.debug("coordination events: %s; retrying in %.1fs", exc, self.retry_s)
                self._stop.wait(self.retry_s)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception as exc:  # noqa: BLE001 - a consumer of a broker that went away
                        log.debug("coordination events: closing the consumer: %s", exc)

    def _open(self, *, from_end: bool):
        from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415 - heavy: kafka-python only when listening

        ensure_topic(self.config, self.topic)
        consumer = KafkaConsumer(**self.config, enable_auto_commit=False, group_id=None,
                                 auto_offset_reset="earliest", fetch_max_wait_ms=100, request_timeout_ms=5000)
        try:
            partitions = None
            deadline = time.monotonic() + 2.0
            while not partitions and time.monotonic() < deadline:
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    time.sleep(0.1)
            if not partitions:
                raise RuntimeError(f"topic {self.topic} has no partitions yet")
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            if from_end:
                consumer.seek_to_end(*tps)
                for tp in tps:
                    consumer.position(tp)  # resolve "end" now, so events from here on are seen
            else:
                consumer.seek_to_beginning(*tps)  # after an outage: catch up (de-duplicated)
            return consumer
        except Exception:
            consumer.close()
            raise

    def _deliver(self, record) -> None:
        kind = dict(record.headers or []).get("type")
        if kind not in self.types:
            return
        try:
            event = Event.model_validate_json(record.value)
        except ValueError:
            log.warning("coordination events: skipping a malformed event at offset %s", record.offset)
            return
        if not self.seen.add(event.event_id):
            return
        self.handled += 1
        try:
            self.handler(event)
        except Exception:
            log.exception("coordination events: handling %s failed", event.type)


class InstanceEvents:
    """An orchestrator instance's side of the coordination events: publish its own
    (joined, left, elected, shards changed) and follow everyone's. Inert without Kafka."""

    def __init__(self, settings: Settings, instance_id: str, handler: Callable[[Event], None]):
        self.instance_id = instance_id
        self.enabled = kafka_enabled(settings)
        self.bus = None
        self.listener = None
        if self.enabled:
            self.bus = KafkaBus.from_settings(settings)
            self.listener = CoordinationListener(settings, handler)

    def start(self, domains: tuple[str, ...]) -> None:
        if self.listener is not None:
            self.listener.start()
        self.publish("instance.joined", {"domains": list(domains)})

    def publish(self, type_: str, payload: dict, execution_id: str = "") -> None:
        if self.bus is not None:
            self.bus.emit(Event.create(type_, execution_id=execution_id, payload=payload,
                                       instance_id=self.instance_id))

    def close(self, domains: tuple[str, ...]) -> None:
        self.publish("instance.left", {"domains": list(domains)})
        if self.listener is not None:
            self.listener.stop()
        if self.bus is not None:
            self.bus.close()
