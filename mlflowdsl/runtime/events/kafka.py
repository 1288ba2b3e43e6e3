"""The Kafka event backend: a bounded queue in the workflow's process, a publisher process.

``emit`` appends to an in-memory deque under a lock and returns (microseconds; it never
touches the network). A background thread takes batches, serializes each event once (key =
execution id, so one execution's events stay in order on one partition; value = the JSON; the
event type for a ``type`` header so consumers can filter without parsing JSON) and hands each
batch as one pickled frame to a **child process** (:mod:`~mlflowdsl.runtime.events.kafka_child`)
that owns the kafka-python producer (``acks="all"``, idempotent). kafka-python's pure-Python
per-record work (~100 µs of CPU an event) so runs outside the workflow's process, where it
competed for the GIL with the Dask scheduler and client. The child reports back, batched every
~50 ms (at once after a flush), how many events it delivered and dropped, whether the broker
is reachable and how often it tried to connect, so the counters keep their meaning:
``emitted == delivered + dropped + pending``.

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
read) and is connected is then **parked**: the next ``KafkaBus`` of this process with the same
interpreter, connection config, topic, window and breaker options **adopts** it instead of
starting a new one (≈ 0.12 s of CPU for the interpreter, kafka-python's imports, the topic and
the connection, per run). Its counters start at zero: reports are deltas and the reader thread
hands each to the child's current ``owner``; a parked child holds nothing, so it has nothing to
report. At most :data:`PARKED_PER_KEY` children are parked per key and :data:`PARKED_MAX` in
all; one not adopted within :data:`KEEP_ALIVE_S` is stopped, and so are all at interpreter exit
(it also still exits by itself at EOF on its stdin when the parent dies). Any other child is
stopped at ``close()`` (bounded: a hung child is killed).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

from mlflowdsl.runtime.events import kafka_child
from mlflowdsl.runtime.events.base import Event, EventBus
from mlflowdsl.runtime.events.kafka_child import (
    API_VERSION,
    PRODUCER_OPTIONS,
    REPORT,
    ensure_topic,
    write_frame,
)
from mlflowdsl.settings import Settings

__all__ = ["API_VERSION", "PRODUCER_OPTIONS", "KafkaBus", "client_config", "ensure_topic"]

log = logging.getLogger(__name__)
# kafka-python logs every refused connection at ERROR; while the broker is down our own
# rate-limited warning says it once. An application that configures "kafka" keeps its level.
if logging.getLogger("kafka").level == logging.NOTSET:
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

WARN_EVERY_S = 30.0
# The sender wakes at most ~20 times a second unless flushed: the child's CPU per event is
# lower with fewer, larger frames (2,000 events at 1,000/s: 0.16 s with 20 ms, 0.13 s with 50 ms).
GATHER_S = 0.05
MAX_CHILD_FAILURES = 5  # children in a row that died within CHILD_YOUNG_S: give up
CHILD_YOUNG_S = 5.0
# os.nice() increment for the publisher process (0: the same priority as the workflow). +10 was
# tried on the shared 2-core benchmark machine: no clear effect on the 1,000-task DAG (RESULTS.md).
PUBLISHER_NICE = 0
CHILD_BACKOFF_S = (0.5, 8.0)  # first and longest wait before restarting a dead child
# Parked (idle, connected) publisher processes kept for the next bus with the same options.
KEEP_ALIVE_S = 30.0  # a parked child not adopted within this long is stopped
PARKED_PER_KEY = 1  # more children closing cleanly with the same key are stopped as before
PARKED_MAX = 4  # parked children in all (one per topic and connection config, at most this many)


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


class _Child:
    """One publisher process and the thread reading its reports.

    The reader thread lives as long as the process and hands each report to ``owner`` (the
    bus using the child; None while it is parked). ``lock`` orders a report against a change
    of owner: it is taken before the owner's condition, never after."""

    def __init__(self, proc: subprocess.Popen, key: tuple):
        self.proc = proc
        self.key = key  # the pool key (_pool_key): who may adopt it
        self.lock = threading.Lock()
        self.owner: KafkaBus | None = None
        self.reader = threading.Thread(target=_read_reports, args=(self,), name="mlw-events-kafka-reports",
                                       daemon=True)
        self.started = time.monotonic()
        self.reported = False  # it sent at least one report (it started properly)
        self.reachable: bool | None = None  # the last reachability it reported
        self.eof = False  # its reports ended: it exited or is exiting
        self.parked_at = 0.0


def _read_reports(child: _Child) -> None:
    stream = child.proc.stdout
    owner = None
    try:
        while True:
            record = stream.read(REPORT.size)
            if len(record) < REPORT.size:
                break
            delivered, dropped, reachable, connects = REPORT.unpack(record)
            with child.lock:
                child.reported = True
                if reachable >= 0:
                    child.reachable = bool(reachable)
                owner = child.owner
                if owner is not None:
                    owner._on_report(delivered, dropped, reachable, connects)
                elif delivered or dropped:  # pragma: no cover - a parked child holds nothing
                    log.debug("Kafka events: a parked publisher reported %d/%d event(s)", delivered, dropped)
    except (OSError, ValueError):
        pass
    finally:
        with child.lock:
            child.eof = True
            owner = child.owner
            if owner is not None:
                with owner._cond:
                    owner._cond.notify_all()
        if owner is None:  # it died while parked (or was stopped): forget it
            _unpark(child)


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
        self.connects = 0  # connection attempts the children made (for tests: no storms)
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
        self._child: _Child | None = None
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
            _kill(child.proc)
            self._thread.join(timeout=1.0)
        if child is not None and (self._thread.is_alive() or not self._park(child)):
            _stop(child, grace=0.5 if self._reachable else 0.0)  # its last reports are counted
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

    def _take_batch(self) -> tuple[_Child, list[tuple[bytes, bytes, bytes]], bool] | None:
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
            with _pool_lock:
                parked = _pool.get(key)
                if not parked:
                    return False
                child = parked.pop()  # the most recently parked
                if not parked:
                    del _pool[key]
            with child.lock, self._cond:
                alive = not child.eof and child.proc.poll() is None
                if alive and self._closed:  # close() came meanwhile: leave it for the next bus
                    with _pool_lock:
                        parked = _pool.setdefault(key, [])
                        if len(parked) < PARKED_PER_KEY:
                            parked.append(child)
                            _start_keeper()
                            return False
                    alive = False
                if alive:
                    child.owner = self
                    self._child = child
                    self._reachable = child.reachable
                    self._cond.notify_all()
            if alive:
                return True
            _stop(child, grace=0.0)  # it died while parked: try the next one

    def _park(self, child: _Child) -> bool:
        """Hand a child that holds nothing to the pool (True), or refuse (False: stop it)."""
        if _exiting or child.key != self._pool_key():
            return False
        # Every report of this bus has been counted once nothing is pending (reports are what
        # brings _outstanding down) and the sender has stopped (no frame is being written).
        with child.lock, self._cond:
            clean = (not self._queue and self._outstanding == 0 and not self._gave_up
                     and self.delivered + self.dropped == self.emitted
                     and child.owner is self and child.reported and not child.eof
                     and self._reachable is True and child.reachable is True)
            if not clean or child.proc.poll() is not None:
                return False
            with _pool_lock:
                parked = _pool.get(child.key, [])
                if len(parked) >= PARKED_PER_KEY or sum(map(len, _pool.values())) >= PARKED_MAX:
                    return False
                child.owner = None
                child.parked_at = time.monotonic()
                _pool[child.key] = [*parked, child]
                _start_keeper()
                _pool_cond.notify_all()
            self._child = None
        return True

    def _spawn(self) -> _Child:
        python = self.python or sys.executable
        if not python:
            raise RuntimeError("no Python interpreter (sys.executable is empty)")
        proc = subprocess.Popen([python, "-P", kafka_child.__file__], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, close_fds=True)
        options = {"config": self.config, "topic": self.topic, "capacity": self.window,
                   "breaker_failures": self.breaker_failures, "breaker_reset_s": self.breaker_reset_s,
                   "max_block_ms": self.max_block_ms, "sys_path": list(sys.path),
                   "log_level": log.getEffectiveLevel(), "nice": PUBLISHER_NICE}
        try:
            write_frame(proc.stdin, ("config", options))
        except OSError:
            pass  # it died at once: its reader sees EOF
        child = _Child(proc, self._pool_key())
        if self._child is not None:
            self.restarts += 1
        return child

    def _on_report(self, delivered: int, dropped: int, reachable: int, connects: int) -> None:
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

    def _reap(self, child: _Child) -> None:
        """A child died: wait for it, count what it held as dropped, note the failure."""
        _kill(child.proc)
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


def _stop(child: _Child, *, grace: float) -> None:
    """Ask the child to finish (``grace`` s to deliver what it holds) and wait for it,
    bounded; a child that does not exit in time is killed (with the broker down at once
    after a moment: it may be inside a connection attempt, and what it holds cannot be
    delivered anyway)."""
    if child.proc.poll() is None:
        try:
            os.set_blocking(child.proc.stdin.fileno(), False)  # a hung child must not block close()
            write_frame(child.proc.stdin, ("close", grace))
        except (OSError, ValueError):
            pass
        try:
            child.proc.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            child.proc.wait(timeout=grace + 1.0 if grace else 0.2)
        except subprocess.TimeoutExpired:
            _kill(child.proc)
    else:
        child.proc.wait()
    if child.reader.ident is not None and child.reader is not threading.current_thread():
        child.reader.join(timeout=1.0)  # the last reports
    for stream in (child.proc.stdin, child.proc.stdout):
        try:
            stream.close()
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------- parked children

_pool: dict[tuple, list[_Child]] = {}  # key -> parked children, oldest first
_pool_lock = threading.Lock()
_pool_cond = threading.Condition(_pool_lock)  # wakes the keeper when a child is parked
_keeper: threading.Thread | None = None
_exiting = False  # at interpreter exit nothing is parked any more


def _frozen(value: Any) -> Any:
    """A hashable form of connection options (dicts and lists of plain values)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def _unpark(child: _Child) -> None:
    """Forget a parked child that exited (its reader saw EOF) and reap it."""
    with _pool_lock:
        parked = _pool.get(child.key)
        if parked is None or child not in parked:
            return
        parked.remove(child)
        if not parked:
            del _pool[child.key]
    _stop(child, grace=0.0)


def _start_keeper() -> None:
    """Start the thread that stops children parked longer than KEEP_ALIVE_S. Holds _pool_lock."""
    global _keeper
    if _keeper is None or not _keeper.is_alive():
        _keeper = threading.Thread(target=_keep, name="mlw-events-kafka-keeper", daemon=True)
        _keeper.start()


def _keep() -> None:
    global _keeper
    while True:
        with _pool_cond:
            if not _pool:
                _keeper = None
                return
            now = time.monotonic()
            expired = [c for parked in _pool.values() for c in parked if now - c.parked_at >= KEEP_ALIVE_S]
            for child in expired:
                parked = _pool[child.key]
                parked.remove(child)
                if not parked:
                    del _pool[child.key]
            if not expired:
                first = min(c.parked_at for parked in _pool.values() for c in parked)
                _pool_cond.wait(max(0.01, first + KEEP_ALIVE_S - now))
                continue
        for child in expired:
            _stop(child, grace=0.0)


def stop_idle_publishers() -> None:
    """Stop every parked publisher process now (at interpreter exit; for tests and benchmarks)."""
    with _pool_lock:
        children = [c for parked in _pool.values() for c in parked]
        _pool.clear()
        _pool_cond.notify_all()
    for child in children:
        _stop(child, grace=0.0)


@atexit.register
def _at_exit() -> None:
    global _exiting
    _exiting = True
    stop_idle_publishers()


def _forget_after_fork() -> None:
    """A forked process must not write to its parent's publisher processes."""
    global _pool_lock, _pool_cond, _keeper
    _pool.clear()
    _pool_lock = threading.Lock()
    _pool_cond = threading.Condition(_pool_lock)
    _keeper = None


os.register_at_fork(after_in_child=_forget_after_fork)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always exits
        pass
