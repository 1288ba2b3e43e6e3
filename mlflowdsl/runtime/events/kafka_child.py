"""The Kafka publisher process: kafka-python's per-record work, out of the workflow's process.

:class:`~mlflowdsl.runtime.events.kafka.KafkaBus` starts this module as a child process
(``python -P kafka_child.py``; :mod:`~mlflowdsl.runtime.events.kafka_pool` manages it) and
feeds it pre-serialized events over its stdin; kafka-python's per-record work is pure Python,
and here it does not compete for the GIL with the Dask scheduler and client. The module runs
as a script before the parent's ``sys.path`` is known, so it imports only the standard
library at the top, pybreaker and kafka-python once the options arrived: it starts fast, and
it is the one home of the wire protocol below (the parent imports it from here).

Protocol (both directions are pipes; the child dies with its parent: EOF on stdin ends it):

- parent -> child, frames of a 4-byte big-endian length and a pickle: first ``("config",
  options)``, then ``("events", [(key, value, type), ...])`` (bytes each) and at the end
  ``("close", grace_s)``. EOF counts as ``("close", EOF_GRACE_S)``.
- child -> parent, fixed :data:`REPORT` records, at most every :data:`REPORT_S` while anything
  changed: delivered and dropped since the last report, whether the broker is reachable
  (-1 unknown, 0, 1), connection attempts since the last report. The last report comes before
  the child exits; what the parent sent and never saw reported is lost with the child.

One child may serve several buses of its parent, one after the other: a bus that closed with
everything delivered parks its (connected, idle) child and the next bus with the same options
adopts it (see :mod:`~mlflowdsl.runtime.events.kafka_pool`). The child does not notice: reports are
deltas, and a parked child holds nothing, so the parent knows whose each report is.

The child owns the producer, the topic creation, the circuit breaker, reconnects and re-sends
undelivered events in order after reconnecting. Its buffer is bounded (``capacity``, oldest dropped and reported) although the
parent's flow control already keeps it below that.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

# Run as a script (__name__ is "__main__"): log under the bus' name.
log = logging.getLogger("mlflowdsl.runtime.events.kafka")

API_VERSION = (2, 6)  # pinned: no version probe against a broker that may be down at start-up
# Durable and ordered (acks from all replicas, idempotent: a retried batch is not written
# twice). Large, lingering batches: kafka-python's cost is per record *and* per batch (a sender
# wake-up each), and 50 ms is nothing for lifecycle events.
PRODUCER_OPTIONS = {"acks": "all", "enable_idempotence": True, "linger_ms": 50, "batch_size": 1 << 20}

HEADER = struct.Struct("!I")
REPORT = struct.Struct("!QQbQ")  # delivered, dropped, reachable (-1/0/1), connects (all but reachable: deltas)
REPORT_S = 0.05  # reports are batched: at most ~20 a second (a flush is reported at once)
EOF_GRACE_S = 2.0  # the parent went away: deliver what is here for at most this long, then exit


def ensure_topic(config: dict[str, Any], topic: str, *, partitions: int = 3, timeout_ms: int = 1000) -> None:
    """Create ``topic`` if the broker does not have it (an existing topic is left alone)."""
    from kafka import KafkaAdminClient  # noqa: PLC0415 - heavy: kafka-python only where a topic is made
    from kafka.admin import NewTopic  # noqa: PLC0415 - heavy: kafka-python
    from kafka.errors import TopicAlreadyExistsError  # noqa: PLC0415 - heavy: kafka-python

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


def write_frame(stream: BinaryIO, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    """The next frame, or None at EOF (or a truncated frame: the writer died)."""
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return pickle.loads(payload)


class Publisher:
    """The child's publisher: stdin -> bounded queue -> producer; counts -> stdout."""

    def __init__(self, options: dict[str, Any], out: BinaryIO):
        import pybreaker  # noqa: PLC0415 - found only on the parent's sys.path, set from the options

        self.pybreaker = pybreaker
        self.config = dict(options["config"])
        self.topic = options["topic"]
        self.capacity = max(1, int(options["capacity"]))
        self.max_block_ms = min(int(options["max_block_ms"]), 1000)
        self.breaker = pybreaker.CircuitBreaker(fail_max=max(1, options["breaker_failures"]),
                                                reset_timeout=options["breaker_reset_s"])
        self.out = out
        self._queue: collections.deque[tuple[int, bytes, bytes, bytes]] = collections.deque()
        self._failed: list[tuple[int, bytes, bytes, bytes]] = []
        self._inflight = 0  # taken from the queue and not yet known delivered or failed
        # Sent, in send order, with their futures: polled (cheaper than a callback per record).
        self._sent: collections.deque[tuple[tuple[int, bytes, bytes, bytes], Any]] = collections.deque()
        self._collect_lock = threading.Lock()
        self._seq = 0
        self._cond = threading.Condition()
        self._closing: float | None = None  # the deadline for delivering what is left, once closing
        self._settled = False
        self._producer: Any = None
        self._reachable: bool | None = None
        # not yet reported
        self._delivered = self._dropped = self._connects = 0
        self._reported_reachable: bool | None = None
        self._stopped = False
        self._flush = False  # the parent waits in flush(): send what lingers now
        self._report_now = threading.Event()

    # ------------------------------------------------------------------ stdin (reader thread)

    def read_input(self, stream: BinaryIO) -> None:
        while True:
            try:
                frame = read_frame(stream)
            except Exception as exc:  # noqa: BLE001 - a garbled stream: treat as the parent gone
                log.debug("Kafka events: unreadable frame from the parent: %s", exc)
                frame = None
            if frame is None:
                self._close(EOF_GRACE_S)
                return
            kind, data = frame[0], frame[1]
            if kind == "events":
                self._enqueue(data, flush=len(frame) > 2 and frame[2])
            elif kind == "close":
                self._close(float(data))
                return

    def _enqueue(self, records: list[tuple[bytes, bytes, bytes]], *, flush: bool = False) -> None:
        with self._cond:
            self._flush = self._flush or flush
            for key, value, type_ in records:
                self._seq += 1
                self._queue.append((self._seq, key, value, type_))
            overflow = len(self._queue) + len(self._failed) + self._inflight - self.capacity
            overflow = min(max(0, overflow), len(self._queue))
            for _ in range(overflow):
                self._queue.popleft()
            self._dropped += overflow
            self._cond.notify_all()

    def _close(self, grace: float) -> None:
        with self._cond:
            if self._closing is None:
                self._closing = time.monotonic() + grace
            self._cond.notify_all()

    # ------------------------------------------------------------------ reports (reporter thread)

    def report_loop(self) -> None:
        while True:
            self._collect()
            with self._cond:
                if not self._changed() and not self._stopped:
                    # Deliveries do not notify: poll every REPORT_S while events are in flight.
                    self._cond.wait(REPORT_S if self._inflight else None)
                    continue
                stop = self._stopped and not self._changed()
                record = REPORT.pack(self._delivered, self._dropped,
                                     -1 if self._reachable is None else int(self._reachable), self._connects)
                self._delivered = self._dropped = self._connects = 0
                self._reported_reachable = self._reachable
            if stop:
                return
            try:
                self.out.write(record)
                self.out.flush()
            except OSError:  # the parent is gone; stdin's EOF ends the rest
                return
            if self._stopped:
                continue  # the last report is out: stop without waiting
            self._report_now.wait(REPORT_S)  # batch reports, unless a flush completed
            self._report_now.clear()

    def _changed(self) -> bool:
        return bool(self._delivered or self._dropped or self._connects or self._reachable != self._reported_reachable)

    # ------------------------------------------------------------------ publisher (main thread)

    def run(self) -> None:
        while True:
            try:
                self._publish_loop()
                break
            except Exception:
                log.exception("Kafka events: publisher error; reconnecting")
                self._trip(RuntimeError("publisher error"))
                time.sleep(0.5)
        self._finish()

    def _done_closing(self) -> bool:
        """Closing, and nothing more to do: all delivered, the grace is over or the broker is away."""
        if self._closing is None:
            return False
        nothing_left = not self._queue and not self._failed and not self._inflight
        return nothing_left or time.monotonic() >= self._closing or self._reachable is False

    def _publish_loop(self) -> None:
        # Connect at once, not at the first event: by the time a short run closes the bus,
        # whether the broker is reachable is known (close() does not wait on a dead one).
        if self._producer is None:
            self._connect()
        while True:
            with self._cond:
                while not self._queue and not self._failed and not self._flush and not self._done_closing():
                    self._cond.wait(0.05 if self._closing is not None else None)
                if self._done_closing():
                    return
            if self._failed:
                self._requeue_failed()
            if self._producer is None and not self._connect():
                with self._cond:
                    self._flush = False  # nothing lingers in a producer that is not there
                continue
            self._send_batch()
            if self._flush:
                self._flush_producer()

    def _flush_producer(self) -> None:
        """The parent is waiting: send what lingers (linger_ms) at once, report at once."""
        with self._cond:
            self._flush = False
        try:
            self._producer.flush(timeout=self.max_block_ms / 1000)
        except Exception as exc:  # noqa: BLE001 - undelivered records are collected as failed
            log.debug("Kafka events: flush: %s", exc)
        self._collect()
        if self._sent and not self._broker_answers():
            # A broker that died after we connected: the producer would only give up on the
            # records after its request timeout (5 s), and the parent's close() waits for as
            # long as the broker counts as reachable. Nothing accepts connections: it is down.
            self._trip(ConnectionError(f"{len(self._sent)} event(s) in flight and no broker accepts connections"))
        self._report_now.set()

    def _broker_answers(self) -> bool:
        """Whether any bootstrap server accepts a TCP connection (within 0.5 s)."""
        servers = self.config["bootstrap_servers"]
        for server in servers.split(",") if isinstance(servers, str) else servers:
            host, _, port = str(server).strip().rpartition(":")
            try:
                socket.create_connection((host.strip("[]") or "localhost", int(port or 9092)), timeout=0.5).close()
                return True
            except (OSError, ValueError):
                continue
        return False

    def _connect(self) -> bool:
        """One connection attempt through the breaker; False while the broker is unreachable."""
        try:
            self._producer = self.breaker.call(self._open_producer)
            self._set_reachable(True)
            return True
        except self.pybreaker.CircuitBreakerError:
            pass  # open: the breaker lets one trial through after breaker_reset_s (no reconnect storm)
        except Exception as exc:  # noqa: BLE001 - any broker trouble means "not now"
            log.debug("Kafka events: cannot reach %s: %s", self.config["bootstrap_servers"], exc)
        self._set_reachable(False)
        with self._cond:
            if self._closing is None:
                self._cond.wait(0.1)
        return False

    def _set_reachable(self, value: bool) -> None:
        with self._cond:
            self._reachable = value
            self._cond.notify_all()

    def _open_producer(self):
        from kafka import KafkaProducer  # noqa: PLC0415 - heavy: kafka-python, after the options set sys.path
        from kafka.errors import KafkaTimeoutError  # noqa: PLC0415 - heavy: kafka-python

        with self._cond:
            self._connects += 1
            self._cond.notify_all()
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
            except Exception as exc:  # noqa: BLE001 - a producer that cannot close cleanly is dropped anyway
                log.debug("Kafka events: closing the producer: %s", exc)
            self._producer = None

    def _send_batch(self) -> None:
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            self._inflight += len(items)
            self._cond.notify_all()  # the reporter polls while events are in flight
        for i, (seq, key, value, type_) in enumerate(items):
            try:
                future = self._producer.send(self.topic, key=key, value=value, headers=[("type", type_)])
            except Exception as exc:  # noqa: BLE001 - metadata timeout, buffer full, broker gone
                self._on_broker_trouble(items[i:], exc)
                return
            self._sent.append(((seq, key, value, type_), future))

    def _collect(self) -> None:
        """Count the sent events whose futures are done, in send order up to the first one
        that is not (records of one produce request complete together)."""
        with self._collect_lock:
            sent = self._sent
            delivered = 0
            failed = []
            while sent:
                item, future = sent[0]
                if not future.is_done:
                    break
                sent.popleft()
                if future.exception is None:
                    delivered += 1
                else:
                    failed.append(item)
            if not delivered and not failed:
                return
            with self._cond:
                if self._settled:
                    return
                self._inflight -= delivered + len(failed)
                self._delivered += delivered
                self._failed.extend(failed)  # re-sent by the main thread after reconnecting
                self._cond.notify_all()

    def _on_broker_trouble(self, unsent: list[tuple[int, bytes, bytes, bytes]], exc: Exception) -> None:
        log.debug("Kafka events: send failed (%s); re-queueing %d event(s)", exc, len(unsent))
        with self._cond:
            self._inflight -= len(unsent)
            self._failed.extend(unsent)
        self._trip(exc)

    def _trip(self, exc: Exception) -> None:
        """Count a failure on the breaker and drop the producer (a new one reconnects)."""
        self._set_reachable(False)
        self._disconnect(timeout=0)
        try:
            self.breaker.call(_raise, exc)
        except (type(exc), self.pybreaker.CircuitBreakerError):
            pass  # the point was to count the failure: the breaker re-raises it, or opens

    def _requeue_failed(self) -> None:
        """Failed events go back to the front of the queue in emit order (drop the oldest
        beyond capacity)."""
        with self._cond:
            failed = sorted(self._failed, key=lambda item: item[0])
            self._failed.clear()
            self._queue.extendleft(reversed(failed))
            overflow = max(0, len(self._queue) + self._inflight - self.capacity)
            for _ in range(overflow):
                self._queue.popleft()
            self._dropped += overflow
        if failed and self._producer is not None:
            self._trip(RuntimeError(f"{len(failed)} event(s) not delivered"))

    def _finish(self) -> None:
        """Closing: give the producer what is left of the grace, count the rest as dropped."""
        left = max(0.0, (self._closing or 0) - time.monotonic())
        self._disconnect(timeout=min(left, 0.5) if self._reachable else 0)
        self._collect()
        with self._cond:
            self._settled = True  # what completes later is not counted again
            self._dropped += len(self._queue) + len(self._failed) + self._inflight
            self._queue.clear()
            self._failed.clear()
            self._inflight = 0
            self._stopped = True
            self._cond.notify_all()
        self._report_now.set()  # the last report without waiting out the report period


def _raise(exc: Exception) -> None:
    raise exc


def main() -> None:
    # The workflow's process decides when this one ends (EOF on stdin): Ctrl-C or a SIGTERM to
    # the process group must not take events away before the parent's close() flushed them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")  # reports; anything printed goes to stderr instead
    os.dup2(2, 1)
    first = read_frame(stdin)
    if first is None or first[0] != "config":
        return
    options = first[1]
    if options.get("nice"):
        try:
            os.nice(int(options["nice"]))
        except OSError:
            pass
    sys.path[:] = options.get("sys_path") or sys.path  # the parent's: kafka-python and pybreaker as it sees them
    logging.basicConfig(level=options.get("log_level", logging.WARNING),
                        format="%(asctime)s %(levelname)s mlw kafka publisher[%(process)d]: %(message)s")
    if logging.getLogger("kafka").level == logging.NOTSET:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our parent warns about drops, rate-limited
    for unused in ("redis", "tornado"):  # pybreaker's optional back-ends: imports the child never needs
        sys.modules.setdefault(unused, None)  # type: ignore[assignment]
    publisher = Publisher(options, out)
    threading.Thread(target=publisher.read_input, args=(stdin,), name="stdin", daemon=True).start()
    reporter = threading.Thread(target=publisher.report_loop, name="reports", daemon=True)
    reporter.start()
    publisher.run()
    reporter.join(timeout=2.0)
    out.close()
    os._exit(0)  # kafka-python's threads are not waited for: everything was counted


if __name__ == "__main__":
    main()
