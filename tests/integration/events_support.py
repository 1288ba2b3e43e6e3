"""Helpers for the event tests: read a topic from the beginning, record what a bus emitted."""

from __future__ import annotations

import time
import uuid

from mlflowdsl.runtime.events.base import Event, EventBus


def fresh_topic() -> str:
    return f"mlw.test.{uuid.uuid4().hex[:8]}"


def read_topic(bootstrap: str, topic: str, *, expect: int | None = None, idle_s: float = 1.5,
               timeout_s: float = 30.0) -> list[Event]:
    """Every event on ``topic`` (partition by partition, in offset order), read until
    ``expect`` were seen or nothing new came for ``idle_s``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=(2, 6), enable_auto_commit=False,
                             group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=100)
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            time.sleep(0.05)
        assert partitions, f"topic {topic} does not exist"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        events: list[Event] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            for records in batch.values():
                events.extend(Event.model_validate_json(r.value) for r in records)
                last_new = time.monotonic()
            if expect is not None and len(events) >= expect:
                break
            if expect is None and time.monotonic() - last_new > idle_s:
                break
        return events
    finally:
        consumer.close()


class RecordingBus(EventBus):
    """Keeps every emitted event in memory: the ground truth of what a run emitted."""

    def __init__(self):
        self.events: list[Event] = []
        self.emitted = 0

    def emit(self, event: Event) -> None:
        self.emitted += 1
        self.events.append(event)
