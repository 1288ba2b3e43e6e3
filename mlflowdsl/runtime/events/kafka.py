"""The Kafka event backend: a bounded queue in the workflow's process, a publisher process.

``emit`` appends to an in-memory deque under a lock and returns (microseconds; it never
touches the network). A background thread takes batches, serializes each event once (key =
execution id, so one execution's events stay in order on one partition; value = the JSON; the
event type for a ``type`` header so consumers can filter without parsing JSON) and hands each
batch as one pickled frame to a **child process** (:mod:`~mlflowdsl.runtime.events.kafka_child`)
that owns the kafka-python producer (``acks="all"``, idempotent). kafka-python's per-record
work is pure Python; in a child it does not compete for the GIL with the Dask scheduler and
client. The child reports back, batched (at once after a flush), how many events it delivered
and dropped, whether the broker is reachable and how often it tried to connect, so the counters
keep their meaning: ``emitted == delivered + dropped + pending``.

The child starts in the background (events queue meanwhile) and exits at EOF on its stdin, so
it dies with its parent. A child that dies is restarted (backoff from 0.5 s, doubling to 8 s);
what it held is counted as dropped. After :data:`MAX_CHILD_FAILURES` children in a row died
young the bus gives up: what is queued and what comes later is dropped and counted, with a
warning. Nothing of this ever raises into a workflow.

While the broker is unreachable (all in the child):

- connecting goes through a circuit breaker (pybreaker): after ``breaker_failures``
  failed attempts it opens and waits ``breaker_reset_s`` before one trial connection, so a dead
  broker costs one bounded attempt per period, not a reconnect storm;
- events stay queued; events the producer could not deliver are re-sent in emit order after
  reconnecting (so a consumer may see an event twice: de-duplicate on ``event_id``).

Memory is bounded by ``capacity`` events in all: the child holds at most ``capacity // 2``
(the parent sends no more until it reports them delivered); when the total is full the
*oldest events still in the parent's queue* are dropped and counted (``events_dropped_total``)
with a warning at most every 30 s.

``close()`` waits up to ``close_timeout_s`` for delivery while the broker is reachable and
returns at once while it is known to be down; what was not delivered then is counted as
dropped. A child that delivered everything (nothing pending, nothing in flight, every report
read) and is connected is then parked for the next bus of this process with the same options
(:mod:`~mlflowdsl.runtime.events.kafka_pool`: starting an interpreter, importing kafka-python,
creating the topic and connecting cost more than a short run). Any other child is stopped at
``close()`` (bounded: a hung child is killed).
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
import time
from typing import Any

from mlflowdsl.runtime.events import kafka_pool
from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.runtime.events.kafka_child import (
    API_VERSION,
    PRODUCER_OPTIONS,
    ensure_topic,
    write_frame,
)
from mlflowdsl.runtime.events.kafka_pool import PublisherProcess, stop_idle_publishers
from mlflowdsl.settings import Settings

__all__ = ["API_VERSION", "PRODUCER_OPTIONS", "KafkaBus", "client_config", "ensure_topic", "stop_idle_publishers"]

log = logging.getLogger(__name__)
# kafka-python logs every refused connection at ERROR; while the broker is down our own
# rate-limited warning says it once. An application that configures "kafka" keeps its level.
if logging.getLogger("kafka").level == logging.NOTSET:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

WARN_EVERY_S = 30.0
# The sender wakes at most ~20 times a second unless flushed: the child spends less CPU per
# event on fewer, larger frames.
GATHER_S = 0.05
MAX_CHILD_FAILURES = 5  # children in a row that died within CHILD_YOUNG_S: give up
CHILD_YOUNG_S = 5.0
PUBLISHER_NICE = 0  # os.nice() increment for the publisher process (0: the workflow's priority)
CHILD_BACKOFF_S = (0.5, 8.0)  # first and longest wait before restarting a dead child


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


class KafkaBus(EventBus):
    """See the module docstring. ``config`` is :func:`client_config`'s output."""

    python: str | None = None  # the interpreter for the publisher process; None: sys.executable

    def __init__(self, config: dict[str, Any], *, topic: str = "mlw.events", capacity: int = 10_000,
                 breaker_failures: int = 2, breaker_reset_s: float = 2.0, max_block_ms: int = 1000,
                 close_timeout_s: float = 5.0, batch: int = 500):
        self.config = dict(config)
        self.topic = topic
        self.capacity = max(1, capacity)
        self.window = max(1, self.capacity // 2)  # events handed to the child and not yet reported
        self.max_block_ms = min(int(max_block_ms), 1000)
        self.close_timeout_s = close_timeout_s
        self.batch = batch
        self.breaker_failures = breaker_failures
        self.breaker_reset_s = breaker_reset_s
        self.emitted = self.dropped = self.delivered = 0
        self.connects = 0  # connection attempts the children made (a reconnect storm shows here)
        self.restarts = 0  # children started after the first
        self._queue: collections.deque[Event] = collections.deque()
        self._outstanding = 0  # sent to the current child, not yet reported delivered or dropped
        self._cond = threading.Condition()
        self._closed = False
        self._close_done = False
        self._gave_up = False
        self._flushing = 0  # callers waiting in flush(): send without gathering
        self._flush_pending = False  # tell the child to send what lingers in its producer now
        self._settled = False
        self._last_warn = -WARN_EVERY_S
        self._unwarned_drops = 0
        self._reachable: bool | None = None  # None until the child reports its first connection attempt
        self._child: PublisherProcess | None = None
        self._failures = 0
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
                if self._closed or self._gave_up:
                    self._drop(1)
                    return
                if len(self._queue) + self._outstanding >= self.capacity:
                    if not self._queue:  # everything is in the child (only with capacity 1)
                        self._drop(1)
                        return
                    self._queue.popleft()
                    self._drop(1)
                self._queue.append(event)
                if len(self._queue) == 1:
                    self._cond.notify_all()
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
            return len(self._queue) + self._outstanding

    @property
    def broker_down(self) -> bool:
        """The child's last connection attempt (or delivery) failed and none succeeded since
        (also once the bus gave up on its publisher process)."""
        return self._reachable is False

    @property
    def publisher_pid(self) -> int | None:
        """The publisher process' pid (None while none runs)."""
        child = self._child
        return child.proc.pid if child is not None and child.owner is self and child.proc.poll() is None else None

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
            if self.delivered + self.dropped < self.emitted:
                self._flush_pending = True
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
        with self._cond:
            if self._close_done:
                return
        self.flush(self.close_timeout_s, while_reachable=True)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        # The sender returns at once, unless it is writing to a child that does not read (hung):
        # then the child is killed, which ends the write.
        self._thread.join(timeout=0.5)
        child = self._child
        if self._thread.is_alive() and child is not None:
            kafka_pool.kill(child.proc)
            self._thread.join(timeout=1.0)
        if child is not None and (self._thread.is_alive() or not self._park(child)):
            kafka_pool.stop(child, grace=0.5 if self._reachable else 0.0)  # its last reports are counted
        with self._cond:
            lost = len(self._queue) + self._outstanding
            self._queue.clear()
            self._outstanding = 0
            self._settled = True  # late reports must not count these again
            self._close_done = True
            if lost:
                self._last_warn = -WARN_EVERY_S
                self._drop(lost)
            self._cond.notify_all()

    # ------------------------------------------------------------------ sender thread

    def _run(self) -> None:
        try:
            while self._ensure_child():
                payload = self._take_batch()
                if payload is None:
                    continue
                child, records, flush = payload
                try:
                    write_frame(child.proc.stdin, ("events", records, flush))
                except (OSError, ValueError):  # the child died (its reports end too): restart it
                    with self._cond:
                        child.eof = True
        except Exception:  # pragma: no cover - a bug here must not leave events counted as pending forever
            log.exception("Kafka events: publisher error; events from now on are dropped")
            self._give_up()

    def _take_batch(self) -> tuple[PublisherProcess, list[tuple[bytes, bytes, bytes]], bool] | None:
        with self._cond:
            child = self._child
            while not self._closed and not child.eof and not self._flush_pending and \
                    (not self._queue or self._outstanding >= self.window):
                self._cond.wait()
            if self._closed or child.eof:
                return None
            # Let a batch gather (emit notifies only an empty queue; flush and close notify at
            # once): waking per event made this thread and the workflow's thread trade the GIL
            # thousands of times a run.
            if len(self._queue) < self.batch and not self._flushing:
                self._cond.wait(GATHER_S)
                if self._closed or child.eof:
                    return None
            n = max(0, min(self.batch, len(self._queue), self.window - self._outstanding))
            events = [self._queue.popleft() for _ in range(n)]
            self._outstanding += n
            flush, self._flush_pending = self._flush_pending, False
        return child, [(e.execution_id.encode(), e.model_dump_json().encode(), e.type.encode()) for e in events], flush

    def _ensure_child(self) -> bool:
        """A running child (started or restarted here); False once closed or given up."""
        with self._cond:
            if self._closed or self._gave_up:
                return False
            child = self._child
            if child is not None and not child.eof:
                return True
        if child is not None:
            self._reap(child)
        while True:
            with self._cond:
                if self._closed:
                    return False
                if self._failures >= MAX_CHILD_FAILURES:
                    break
                if self._failures:
                    self._cond.wait(min(CHILD_BACKOFF_S[0] * 2 ** (self._failures - 1), CHILD_BACKOFF_S[1]))
                    if self._closed:
                        return False
            if self._adopt():
                return True
            with self._cond:
                if self._closed:
                    return False
            try:
                child = self._spawn()
            except Exception as exc:  # noqa: BLE001 - no interpreter, no memory, too many processes
                log.warning("Kafka events: cannot start the publisher process: %s", exc)
                self._failures += 1
                continue
            with child.lock:
                child.owner = self
                child.reader.start()
                with self._cond:
                    self._child = child
                    if self._closed:  # close() came while it started: close() stops it
                        return False
            return True
        self._give_up()
        return False

    def _pool_key(self) -> tuple:
        """What a parked child must share with this bus to be adopted by it."""
        return (self.python or sys.executable, _frozen(self.config), self.topic, self.window, self.breaker_failures,
                self.breaker_reset_s, self.max_block_ms, PUBLISHER_NICE)

    def _adopt(self) -> bool:
        """Take a parked child with this bus' key, if one is alive (counters start at zero)."""
        key = self._pool_key()
        while True:
            child = kafka_pool.take_parked(key)
            if child is None:
                return False
            with child.lock, self._cond:
                alive = not child.eof and child.proc.poll() is None
                if alive and self._closed:  # close() came meanwhile: leave it for the next bus
                    if kafka_pool.return_parked(child):
                        return False
                    alive = False
                if alive:
                    child.owner = self
                    self._child = child
                    self._reachable = child.reachable
                    self._cond.notify_all()
            if alive:
                return True
            kafka_pool.stop(child, grace=0.0)  # it died while parked: try the next one

    def _park(self, child: PublisherProcess) -> bool:
        """Hand a child that holds nothing to the pool (True), or refuse (False: stop it)."""
        if child.key != self._pool_key():
            return False
        # Every report of this bus has been counted once nothing is pending (reports are what
        # brings _outstanding down) and the sender has stopped (no frame is being written).
        with child.lock, self._cond:
            clean = (not self._queue and self._outstanding == 0 and not self._gave_up
                     and self.delivered + self.dropped == self.emitted
                     and child.owner is self and child.reported and not child.eof
                     and self._reachable is True and child.reachable is True)
            if not clean or child.proc.poll() is not None or not kafka_pool.park(child):
                return False
            self._child = None
        return True

    def _spawn(self) -> PublisherProcess:
        python = self.python or sys.executable
        if not python:
            raise RuntimeError("no Python interpreter (sys.executable is empty)")
        options = {"config": self.config, "topic": self.topic, "capacity": self.window,
                   "breaker_failures": self.breaker_failures, "breaker_reset_s": self.breaker_reset_s,
                   "max_block_ms": self.max_block_ms, "sys_path": list(sys.path),
                   "log_level": log.getEffectiveLevel(), "nice": PUBLISHER_NICE}
        child = kafka_pool.start_publisher(python, options, self._pool_key())
        if self._child is not None:
            self.restarts += 1
        return child

    def on_report(self, delivered: int, dropped: int, reachable: int, connects: int) -> None:
        """A report of this bus' child (the reader thread, holding the child's lock)."""
        with self._cond:
            if self._settled:
                return
            self._outstanding -= delivered + dropped
            self.delivered += delivered
            if dropped:
                self._drop(dropped)
            self.connects += connects
            if reachable >= 0:
                self._reachable = bool(reachable)
            self._cond.notify_all()

    def on_publisher_eof(self) -> None:
        """The child's reports ended (the reader thread, holding the child's lock)."""
        with self._cond:
            self._cond.notify_all()

    def _reap(self, child: PublisherProcess) -> None:
        """A child died: wait for it, count what it held as dropped, note the failure."""
        kafka_pool.kill(child.proc)
        child.reader.join(timeout=2.0)
        with self._cond:
            lost = self._outstanding
            self._outstanding = 0
            if child.reported and time.monotonic() - child.started >= CHILD_YOUNG_S:
                self._failures = 0
            self._failures += 1
            if not self._settled:
                self._last_warn = -WARN_EVERY_S
                log.warning("Kafka events: the publisher process (pid %d) exited with %s; %d event(s) it held are "
                            "lost; restarting it", child.proc.pid, child.proc.returncode, lost)
                if lost:
                    self._drop(lost)

    def _give_up(self) -> None:
        with self._cond:
            self._gave_up = True
            self._reachable = False
            lost = len(self._queue)
            self._queue.clear()
            log.warning("Kafka events: the publisher process failed %d time(s) in a row; dropping %d queued "
                        "event(s) and every later one", self._failures, lost)
            self._last_warn = time.monotonic()
            self.dropped += lost
            self._cond.notify_all()


def _frozen(value: Any) -> Any:
    """A hashable form of connection options (dicts and lists of plain values)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value
