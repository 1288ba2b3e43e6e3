"""The Kafka publisher processes as the parent sees them: starting one, reading its reports,
stopping it, and the pool where idle ones wait for the next bus.

A :class:`PublisherProcess` is one child (:mod:`~mlflowdsl.runtime.events.kafka_child`) and
the thread that reads its reports for as long as it lives. The reader hands each report to the
child's current ``owner`` (the :class:`~mlflowdsl.runtime.events.kafka.KafkaBus` using it, or
None while it is parked); reports are deltas, and a parked child holds nothing, so each report
belongs to whoever owns the child when it arrives.

A bus that closed with everything delivered **parks** its connected child here; the next bus
of this process with the same pool key (interpreter, connection config, topic, window and
breaker options) **adopts** it instead of starting a new interpreter and connection. At most
:data:`PARKED_PER_KEY` children are parked per key and :data:`PARKED_MAX` in all; one not
adopted within :data:`KEEP_ALIVE_S` is stopped by a keeper thread, and all of them are stopped
at interpreter exit (a child also exits by itself at EOF on its stdin when the parent dies).
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import threading
import time
from typing import Any, Protocol

from mlflowdsl.runtime.events import kafka_child
from mlflowdsl.runtime.events.kafka_child import REPORT, write_frame

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 30.0  # a parked child not adopted within this long is stopped
PARKED_PER_KEY = 1  # more children closing cleanly with the same key are stopped
PARKED_MAX = 4  # parked children in all (one per topic and connection config, at most this many)


class ReportOwner(Protocol):
    """What a publisher process reports to (a bus); called from its reader thread, which
    holds the child's ``lock``."""

    def on_report(self, delivered: int, dropped: int, reachable: int, connects: int) -> None: ...

    def on_publisher_eof(self) -> None: ...


class PublisherProcess:
    """One publisher process and the thread reading its reports.

    ``lock`` orders a report against a change of ``owner``: it is taken before the owner's own
    lock, never after."""

    def __init__(self, proc: subprocess.Popen, key: tuple):
        self.proc = proc
        self.key = key  # the pool key: who may adopt it
        self.lock = threading.Lock()
        self.owner: ReportOwner | None = None
        self.reader = threading.Thread(target=read_reports, args=(self,), name="mlw-events-kafka-reports",
                                       daemon=True)
        self.started = time.monotonic()
        self.reported = False  # it sent at least one report (it started properly)
        self.reachable: bool | None = None  # the last reachability it reported
        self.eof = False  # its reports ended: it exited or is exiting
        self.parked_at = 0.0


def start_publisher(python: str, options: dict[str, Any], key: tuple) -> PublisherProcess:
    """Start a publisher process with ``python`` and send it its ``options`` (the reader
    thread is not started: the caller sets the owner first)."""
    proc = subprocess.Popen([python, "-P", kafka_child.__file__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, close_fds=True)
    try:
        write_frame(proc.stdin, ("config", options))
    except OSError as exc:  # it died at once: its reader sees EOF
        log.debug("Kafka events: the publisher process (pid %d) did not take its options: %s", proc.pid, exc)
    return PublisherProcess(proc, key)


def read_reports(child: PublisherProcess) -> None:
    """The reader thread: hand each report to the owner; at EOF wake the owner, or forget
    the child if it was parked."""
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
                    owner.on_report(delivered, dropped, reachable, connects)
                elif delivered or dropped:  # pragma: no cover - a parked child holds nothing
                    log.debug("Kafka events: a parked publisher reported %d/%d event(s)", delivered, dropped)
    except (OSError, ValueError) as exc:  # the pipe closed under the read: the same as EOF
        log.debug("Kafka events: reports of pid %d ended: %s", child.proc.pid, exc)
    finally:
        with child.lock:
            child.eof = True
            owner = child.owner
            if owner is not None:
                owner.on_publisher_eof()
        if owner is None:  # it died while parked (or was stopped): forget it
            _unpark(child)


def stop(child: PublisherProcess, *, grace: float) -> None:
    """Ask the child to finish (``grace`` s to deliver what it holds) and wait for it,
    bounded; a child that does not exit in time is killed (with the broker down at once
    after a moment: it may be inside a connection attempt, and what it holds cannot be
    delivered anyway)."""
    if child.proc.poll() is None:
        try:
            os.set_blocking(child.proc.stdin.fileno(), False)  # a hung child must not block close()
            write_frame(child.proc.stdin, ("close", grace))
        except (OSError, ValueError) as exc:  # gone, or its pipe is full: the wait below decides
            log.debug("Kafka events: close frame to pid %d not sent: %s", child.proc.pid, exc)
        try:
            child.proc.stdin.close()
        except (OSError, ValueError) as exc:  # a partly written frame in a non-blocking pipe
            log.debug("Kafka events: closing the stdin of pid %d: %s", child.proc.pid, exc)
        try:
            child.proc.wait(timeout=grace + 1.0 if grace else 0.2)
        except subprocess.TimeoutExpired:
            kill(child.proc)
    else:
        child.proc.wait()
    if child.reader.ident is not None and child.reader is not threading.current_thread():
        child.reader.join(timeout=1.0)  # the last reports
    for stream in (child.proc.stdin, child.proc.stdout):
        try:
            stream.close()
        except (OSError, ValueError) as exc:
            log.debug("Kafka events: closing a pipe of pid %d: %s", child.proc.pid, exc)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` if it still runs, and reap it."""
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError as exc:  # it exited between poll() and kill()
            log.debug("Kafka events: kill pid %d: %s", proc.pid, exc)
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always exits
        log.warning("Kafka events: the publisher process (pid %d) did not exit after SIGKILL", proc.pid)


# ---------------------------------------------------------------------- the pool of parked children

_pool: dict[tuple, list[PublisherProcess]] = {}  # key -> parked children, oldest first
_pool_lock = threading.Lock()
_pool_cond = threading.Condition(_pool_lock)  # wakes the keeper when a child is parked
_keeper: threading.Thread | None = None
_exiting = False  # at interpreter exit nothing is parked any more


def park(child: PublisherProcess) -> bool:
    """Put an idle child into the pool (True), or refuse when the pool is full or the
    interpreter is exiting (False: the caller stops it). The caller holds ``child.lock``."""
    with _pool_lock:
        if _exiting:
            return False
        parked = _pool.get(child.key, [])
        if len(parked) >= PARKED_PER_KEY or sum(map(len, _pool.values())) >= PARKED_MAX:
            return False
        child.owner = None
        child.parked_at = time.monotonic()
        _pool[child.key] = [*parked, child]
        _start_keeper()
        _pool_cond.notify_all()
    return True


def take_parked(key: tuple) -> PublisherProcess | None:
    """The most recently parked child with ``key``, out of the pool (it may have died since)."""
    with _pool_lock:
        parked = _pool.get(key)
        if not parked:
            return None
        child = parked.pop()
        if not parked:
            del _pool[key]
        return child


def return_parked(child: PublisherProcess) -> bool:
    """Put a child taken with :func:`take_parked` back (its keep-alive is not renewed);
    False when another one took its place meanwhile."""
    with _pool_lock:
        parked = _pool.get(child.key, [])
        if len(parked) >= PARKED_PER_KEY:
            return False
        _pool[child.key] = [*parked, child]
        _start_keeper()
        return True


def _unpark(child: PublisherProcess) -> None:
    """Forget a parked child that exited (its reader saw EOF) and reap it."""
    with _pool_lock:
        parked = _pool.get(child.key)
        if parked is None or child not in parked:
            return
        parked.remove(child)
        if not parked:
            del _pool[child.key]
    stop(child, grace=0.0)


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
            stop(child, grace=0.0)


def stop_idle_publishers() -> None:
    """Stop every parked publisher process now (at interpreter exit; also for benchmarks
    that measure start-up)."""
    with _pool_lock:
        children = [c for parked in _pool.values() for c in parked]
        _pool.clear()
        _pool_cond.notify_all()
    for child in children:
        stop(child, grace=0.0)


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
