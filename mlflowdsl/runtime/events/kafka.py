"""The Kafka event backend: a bounded queue drained by a background publisher thread.

``emit`` appends to an in-memory deque under a lock and returns (microseconds; it never
touches the network). The publisher thread serializes events and hands them to a
kafka-python producer: key = execution id (one execution's events stay in order on one
partition), ``acks="all"``, idempotent, the event type in a ``type`` header (so consumers
can filter without parsing JSON).

While the broker is unreachable:

- connecting goes through a circuit breaker (pybreaker): after ``breaker_failures``
  failed attempts it opens and the thread waits ``breaker_reset_s`` before one trial
  connection, so a dead broker costs one bounded attempt per period, not a reconnect storm;
- events stay queued; when the queue is full the *oldest* are dropped and counted
  (``events_dropped_total``) with a warning at most every 30 s;
- events the producer could not deliver go back to the front of the queue and are sent
  again after reconnecting (so a consumer may see an event twice: de-duplicate on
  ``event_id``).

``close()`` waits up to ``close_timeout_s`` for delivery while the broker is reachable and
returns at once while the breaker is open; what is still queued then is counted as dropped.
Counters: ``emitted == delivered + dropped + pending``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import pybreaker

from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)
# kafka-python logs every refused connection at ERROR; while the broker is down our own
# rate-limited warning says it once. An application that configures "kafka" keeps its level.
if logging.getLogger("kafka").level == logging.NOTSET:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

API_VERSION = (2, 6)  # pinned: no version probe against a broker that may be down at start-up
WARN_EVERY_S = 30.0
GATHER_S = 0.02  # the publisher wakes at most ~50 times a second unless flushed
# Durable and ordered (acks from all replicas, idempotent: a retried batch is not written
# twice). Large, lingering batches: kafka-python's cost is per record *and* per batch (a sender
# wake-up each), and 50 ms is nothing for lifecycle events (flush() sends at once).
PRODUCER_OPTIONS = {"acks": "all", "enable_idempotence": True, "linger_ms": 50, "batch_size": 1 << 20}


def client_config(settings: Settings) -> dict[str, Any]:
    """kafka-python connection options from the settings (TLS and SASL passed through).

    >>> client_config(Settings(kafka_bootstrap="k1:9092,k2:9092"))["bootstrap_servers"]
    ['k1:9092', 'k2:9092']
    """
    config: dict[str, Any] = {
        "bootstrap_servers": [b.strip() for b in (settings.kafka_bootstrap or "").split(",") if b.strip()],
        "api_version": API_VERSION,
        "security_protocol": settings.kafka_security_protocol,
    }
    optional = {"ssl_cafile": settings.kafka_ssl_cafile, "ssl_certfile": settings.kafka_ssl_certfile,
                "ssl_keyfile": settings.kafka_ssl_keyfile, "sasl_mechanism": settings.kafka_sasl_mechanism,
                "sasl_plain_username": settings.kafka_sasl_username,
                "sasl_plain_password": settings.kafka_sasl_password}
    config.update({k: v for k, v in optional.items() if v})
    return config


def ensure_topic(config: dict[str, Any], topic: str, *, partitions: int = 3, timeout_ms: int = 1000) -> None:
    """Create ``topic`` if the broker does not have it (an existing topic is left alone)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**config, request_timeout_ms=max(timeout_ms, 1000), bootstrap_timeout_ms=timeout_ms,
                             reconnect_backoff_max_ms=1000)
    try:
        # create_topics, not list_topics: the metadata reply of some brokers (Tansu) carries ACL
        # operations kafka-python cannot decode at the pinned API version.
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


class KafkaBus(EventBus):
    """See the module docstring. ``config`` is :func:`client_config`'s output."""

    def __init__(self, config: dict[str, Any], *, topic: str = "mlw.events", capacity: int = 10_000,
                 breaker_failures: int = 2, breaker_reset_s: float = 2.0, max_block_ms: int = 1000,
                 close_timeout_s: float = 5.0, batch: int = 500):
        self.config = dict(config)
        self.topic = topic
        self.capacity = capacity
        self.max_block_ms = min(int(max_block_ms), 1000)
        self.close_timeout_s = close_timeout_s
        self.batch = batch
        self.emitted = self.dropped = self.delivered = 0
        self.connects = 0  # connection attempts that reached the broker code (for tests: no storms)
        self._queue: collections.deque[tuple[int, Event]] = collections.deque()
        self._failed: list[tuple[int, Event]] = []
        self._inflight = 0
        self._seq = 0
        self._cond = threading.Condition()
        self._closed = False
        self._flushing = 0  # callers waiting in flush(): send without gathering
        self._settled = False
        self._last_warn = -WARN_EVERY_S
        self._unwarned_drops = 0
        self._producer: Any = None
        self._reachable: bool | None = None  # None until the first connection attempt ends
        self.breaker = pybreaker.CircuitBreaker(fail_max=max(1, breaker_failures), reset_timeout=breaker_reset_s)
        self._thread = threading.Thread(target=self._run, name="mlw-events-kafka", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaBus:
        return cls(client_config(settings), topic=settings.kafka_topic, capacity=settings.events_queue_capacity)

    # ------------------------------------------------------------------ producer side (any thread)

    def emit(self, event: Event) -> None:
        try:
            with self._cond:
                self.emitted += 1
                if self._closed:
                    self._drop(1)
                    return
                if len(self._queue) >= self.capacity:
                    self._queue.popleft()
                    self._drop(1)
                self._seq += 1
                self._queue.append((self._seq, event))
                if len(self._queue) == 1:
                    self._cond.notify()
        except Exception:  # pragma: no cover - emit must never raise into a workflow
            self.dropped += 1

    def _drop(self, n: int) -> None:
        """Count ``n`` dropped events and warn (rate-limited). Caller holds the lock."""
        self.dropped += n
        self._unwarned_drops += n
        now = time.monotonic()
        if now - self._last_warn >= WARN_EVERY_S:
            self._last_warn = now
            log.warning("Kafka events: dropped %d event(s) (%d in total; queue capacity %d, broker %s)",
                        self._unwarned_drops, self.dropped, self.capacity, ",".join(self.config["bootstrap_servers"]))
            self._unwarned_drops = 0

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._failed) + self._inflight

    @property
    def broker_down(self) -> bool:
        """The last connection attempt (or delivery) failed and none succeeded since."""
        return self._reachable is False

    def metrics(self) -> dict[str, int]:
        with self._cond:
            return {"events_emitted_total": self.emitted, "events_delivered_total": self.delivered,
                    "events_dropped_total": self.dropped}

    def flush(self, timeout: float = 5.0, *, while_reachable: bool = False) -> bool:
        """Wait (at most ``timeout``) until every emitted event is delivered or dropped;
        with ``while_reachable`` stop waiting as soon as the broker is known to be down."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
            self._cond.notify_all()
        try:
            return self._wait_delivered(deadline, while_reachable)
        finally:
            with self._cond:
                self._flushing -= 1

    def _wait_delivered(self, deadline: float, while_reachable: bool) -> bool:
        with self._cond:
            while self.delivered + self.dropped < self.emitted:
                if while_reachable and self.broker_down:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        self.flush(self.close_timeout_s, while_reachable=True)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        # A publisher stuck in a connection attempt to a dead broker is not waited for (it is
        # a daemon and exits when the attempt ends); a live one finishes its send first.
        self._thread.join(timeout=0.2 if self.broker_down else self.max_block_ms / 1000 + 2.0)
        with self._cond:
            lost = len(self._queue) + len(self._failed) + self._inflight
            self._queue.clear()
            self._failed.clear()
            self._inflight = 0
            self._settled = True  # late producer callbacks must not count these again
            if lost:
                self._last_warn = -WARN_EVERY_S
                self._drop(lost)
            self._cond.notify_all()

    # ------------------------------------------------------------------ publisher thread

    def _run(self) -> None:
        while True:
            try:
                self._publish_loop()
                return
            except Exception:
                log.exception("Kafka events: publisher error; reconnecting")
                self._trip(RuntimeError("publisher error"))
                time.sleep(0.5)

    def _publish_loop(self) -> None:
        # Connect at once, not at the first event: by the time a short run closes the bus,
        # whether the broker is reachable is known (close() does not wait on a dead one).
        self._connect()
        while True:
            with self._cond:
                while not self._queue and not self._failed and not self._closed:
                    self._cond.wait()
                if self._closed:
                    break
                # Let a batch gather (emit notifies only an empty queue; flush and close notify
                # at once): waking per event made this thread and the workflow's thread trade
                # the GIL thousands of times a run.
                if len(self._queue) < self.batch and not self._flushing:
                    self._cond.wait(GATHER_S)
            if self._failed:
                self._requeue_failed()
            if self._producer is None and not self._connect():
                continue
            self._send_batch()
        self._disconnect(timeout=0.5 if not self.broker_down else 0)

    def _connect(self) -> bool:
        """One connection attempt through the breaker; False while the broker is unreachable."""
        try:
            self._producer = self.breaker.call(self._open_producer)
            self._reachable = True
            return True
        except pybreaker.CircuitBreakerError:
            pass  # open: the breaker lets one trial through after breaker_reset_s (no reconnect storm)
        except Exception as exc:  # noqa: BLE001 - any broker trouble means "not now"
            log.debug("Kafka events: cannot reach %s: %s", self.config["bootstrap_servers"], exc)
        self._reachable = False
        with self._cond:
            if not self._closed:
                self._cond.wait(0.1)
        return False

    def _open_producer(self):
        from kafka import KafkaProducer
        from kafka.errors import KafkaTimeoutError

        self.connects += 1
        ensure_topic(self.config, self.topic, timeout_ms=self.max_block_ms)
        producer = KafkaProducer(**self.config, **PRODUCER_OPTIONS, max_block_ms=self.max_block_ms,
                                 request_timeout_ms=5000, delivery_timeout_ms=15000, reconnect_backoff_max_ms=1000)
        try:
            if not producer.partitions_for(self.topic):
                raise KafkaTimeoutError(f"no partitions for {self.topic}")
        except Exception:
            producer.close(timeout=0)
            raise
        return producer

    def _disconnect(self, timeout: float = 0) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=timeout)
            except Exception:  # noqa: BLE001
                pass
            self._producer = None

    def _send_batch(self) -> None:
        with self._cond:
            n = min(self.batch, len(self._queue))
            items = [self._queue.popleft() for _ in range(n)]
            self._inflight += n
        for i, (seq, event) in enumerate(items):
            try:
                future = self._producer.send(self.topic, key=event.execution_id.encode(),
                                             value=event.model_dump_json().encode(),
                                             headers=[("type", event.type.encode())])
            except Exception as exc:  # noqa: BLE001 - metadata timeout, buffer full, broker gone
                self._on_broker_trouble(items[i:], exc)
                return
            future.add_callback(self._on_delivered)
            future.add_errback(self._on_failed, seq, event)

    def _on_delivered(self, _metadata) -> None:
        with self._cond:
            if self._settled:
                return
            self._inflight -= 1
            self.delivered += 1
            if self.delivered + self.dropped >= self.emitted:
                self._cond.notify_all()

    def _on_failed(self, seq: int, event: Event, exc: Exception) -> None:  # the producer's I/O thread
        with self._cond:
            if self._settled:
                return
            self._inflight -= 1
            self._failed.append((seq, event))
            self._cond.notify_all()

    def _on_broker_trouble(self, unsent: list[tuple[int, Event]], exc: Exception) -> None:
        log.debug("Kafka events: send failed (%s); re-queueing %d event(s)", exc, len(unsent))
        with self._cond:
            self._inflight -= len(unsent)
            self._failed.extend(unsent)
        self._trip(exc)

    def _trip(self, exc: Exception) -> None:
        """Count a failure on the breaker and drop the producer (a new one reconnects)."""
        self._reachable = False
        self._disconnect(timeout=0)
        try:
            self.breaker.call(_raise, exc)
        except Exception:  # noqa: BLE001 - the point was to count the failure
            pass

    def _requeue_failed(self) -> None:
        """Failed events go back to the front of the queue in emit order (drop the oldest
        beyond capacity)."""
        with self._cond:
            failed = sorted(self._failed, key=lambda item: item[0])
            self._failed.clear()
            self._queue.extendleft(reversed(failed))
            overflow = len(self._queue) - self.capacity
            for _ in range(max(0, overflow)):
                self._queue.popleft()
            if overflow > 0:
                self._drop(overflow)
        if failed and self._producer is not None:
            self._trip(RuntimeError(f"{len(failed)} event(s) not delivered"))


def _raise(exc: Exception) -> None:
    raise exc
