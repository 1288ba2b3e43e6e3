"""Per-attempt log capture on the worker: what a task prints to stdout or stderr and the
``logging`` records it emits, stored with its attempt in the state store.

The first capture in a process puts a thin proxy in front of ``sys.stdout`` and
``sys.stderr`` and one handler on the root logger. Both route by thread: what a thread running
an attempt writes goes to that attempt's :class:`AttemptCapture` (and, for the streams, on to
the worker's own stream as before); other threads are not affected. A capture keeps its text
in memory, bounded by the ``attempt_log_bytes`` setting (the oldest bytes are dropped), and one
flusher thread per process appends what is new to the state store every
:data:`FLUSH_INTERVAL_S`, so a worker that is killed leaves what was flushed until then; the
attempt's end (success or failure) flushes the rest from the task's thread. An attempt with no
output costs no store write at all.

``logging`` records are captured at the levels the logging configuration lets through
(Python's default: ``WARNING`` and up; a task that wants ``INFO`` sets its logger's level).

Attempts with a timeout run in a forked child (``worker.run_with_timeout``); a child must not
use the parent's store connections, so :func:`forked` makes the child write its output to a
file, which the parent's flusher reads as it grows, and reads once more when the child is over
(exited or killed).
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any, Callable

from mlflowdsl.runtime.state.sqlite import SQLiteLogWriter
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.5
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")

_local = threading.local()
_active: dict[int, AttemptCapture] = {}  # id -> capture, for the flusher
_sinks: dict[tuple, Any] = {}  # (pid, target) -> writer; never dropped (see SQLiteLogWriter)
_state = {"installed": False, "flusher": False}  # "flusher": this process runs one
_install_lock = threading.Lock()


class _Stream:
    """``sys.stdout``/``sys.stderr`` as seen by tasks: the original stream, plus a copy to the
    capture of the thread that writes, when it has one."""

    def __init__(self, original: Any):
        self._mlw_original = original

    def write(self, text: str) -> int:
        capture = getattr(_local, "capture", None)
        if capture is not None:
            capture.write(text)
        return self._mlw_original.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._mlw_original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._mlw_original, name)


class _Handler(logging.Handler):
    """On the root logger: a record emitted in a capturing thread goes to its capture. With no
    other root handler, records of other threads go where Python sends them without one."""

    def emit(self, record: logging.LogRecord) -> None:
        capture = getattr(_local, "capture", None)
        root = logging.getLogger()
        if capture is not None:
            if not any(isinstance(getattr(h, "stream", None), _Stream) for h in root.handlers):
                capture.write(_FORMAT.format(record) + "\n")  # else the stream handler's output is captured
        elif len(root.handlers) == 1 and logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


def _install() -> None:
    """The stream proxies (again, when something replaced ``sys.stdout`` or ``sys.stderr``
    since) and, once per process, the logging handler."""
    with _install_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is not None and not isinstance(stream, _Stream):
                setattr(sys, name, _Stream(stream))
        if not _state["installed"]:
            logging.getLogger().addHandler(_Handler())
            _state["installed"] = True


def _start_flusher() -> None:
    with _install_lock:
        if not _state["flusher"]:
            _state["flusher"] = True
            threading.Thread(target=_flush_loop, name="mlw-logs", daemon=True).start()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL_S)
        for capture in list(_active.values()):
            if capture.pending or capture.side_file:
                capture.flush()


def _after_fork_in_child() -> None:
    _active.clear()  # the parent flushes its captures; a child's output goes through a file
    _state["flusher"] = False  # threads do not survive a fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def _sink(target: dict[str, Any], settings: Settings) -> Any:
    # A worker serves runs of different settings: a Redis target is theirs (URL and key prefix).
    where = (settings.redis_url, settings.key_prefix) if target.get("kind") == "redis" else ()
    key = (os.getpid(), tuple(sorted(target.items())), where)
    sink = _sinks.get(key)
    if sink is None:
        if target.get("kind") == "sqlite":
            sink = SQLiteLogWriter(target["path"])
        elif target.get("kind") == "redis":
            from mlflowdsl.runtime.state.redis import RedisState  # noqa: PLC0415 - heavy: redis only in cluster mode

            sink = RedisState.from_settings(settings)
        else:
            raise ValueError(f"unknown log target {target!r}")
        sink = _sinks.setdefault(key, sink)
    return sink


class AttemptCapture:
    """The output of one attempt: a bounded in-memory tail, flushed to the state store.
    An attempt that prints nothing pays for this object, a thread-local swap and two dict
    operations (bench/ui.py measures it); no system call."""

    __slots__ = ("target", "settings", "execution_id", "task_id", "attempt", "limit", "pending", "pending_bytes",
                 "dropped", "side_file", "side_pos", "child_fd", "_flush_lock", "_previous")

    def __init__(self, target: dict[str, Any], settings: Settings, execution_id: str, task_id: str, attempt: int):
        self.target, self.settings = target, settings
        self.execution_id, self.task_id, self.attempt = execution_id, task_id, attempt
        self.limit = max(1, int(settings.attempt_log_bytes))
        self.pending: collections.deque[bytes] = collections.deque()
        self.pending_bytes = 0
        self.dropped = 0  # bytes cut before they reached the store
        self.side_file: str | None = None  # a forked child's output (see forked)
        self.side_pos = 0
        self.child_fd: int | None = None  # set in the child: write there instead
        self._flush_lock = threading.Lock()
        self._previous: AttemptCapture | None = None

    # -------------------------------------------------------------- the task's side

    def write(self, text: str) -> None:
        if not text:
            return
        data = text.encode("utf-8", "replace")
        if self.child_fd is not None:
            os.write(self.child_fd, data)
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        while self.pending_bytes > self.limit and len(self.pending) > 1:
            try:
                oldest = self.pending.popleft()
            except IndexError:  # the flusher took it
                break
            self.pending_bytes -= len(oldest)
            self.dropped += len(oldest)

    def __enter__(self) -> AttemptCapture:
        if not _state["installed"] or type(sys.stdout) is not _Stream or type(sys.stderr) is not _Stream:
            _install()
        if not _state["flusher"]:
            _start_flusher()
        self._previous = getattr(_local, "capture", None)
        _local.capture = self
        _active[id(self)] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _local.capture = self._previous
        _active.pop(id(self), None)
        if self.pending or self.side_file:
            self.flush()
        if self.side_file:
            try:
                os.unlink(self.side_file)
            except OSError as err:
                log.debug("cannot remove %s: %s", self.side_file, err)
            self.side_file = None

    # -------------------------------------------------------------- the store's side

    def _take(self) -> tuple[bytes, int]:
        chunks = []
        while True:
            try:
                chunks.append(self.pending.popleft())
            except IndexError:
                break
        data = b"".join(chunks)
        self.pending_bytes = max(0, self.pending_bytes - len(data))
        if self.side_file:
            try:
                with open(self.side_file, "rb") as fh:
                    fh.seek(self.side_pos)
                    more = fh.read()
                self.side_pos += len(more)
                data += more
            except OSError as err:
                log.debug("cannot read %s: %s", self.side_file, err)
        dropped, self.dropped = self.dropped, 0
        if len(data) > self.limit:
            dropped += len(data) - self.limit
            data = data[-self.limit:]
        return data, dropped

    def flush(self) -> None:
        """Append what is new to the store; never fails the task (a lost log is logged)."""
        with self._flush_lock:
            data, dropped = self._take()
            if not data and not dropped:
                return
            try:
                _sink(self.target, self.settings).append_attempt_log(
                    self.execution_id, self.task_id, self.attempt, data, limit=self.limit, dropped=dropped)
            except Exception as exc:  # noqa: BLE001 - a store that is down must not fail the task
                log.warning("attempt log of %s/%s attempt %d not stored (%d bytes): %s",
                            self.execution_id, self.task_id, self.attempt, len(data), exc)


class _NoCapture:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_CAPTURE = _NoCapture()


def capture(target: dict[str, Any] | None, settings: Settings, execution_id: str, task_id: str,
            attempt: int) -> AttemptCapture | _NoCapture:
    """The context manager around one attempt (nothing when the store keeps no logs)."""
    if target is None or settings.attempt_log_bytes <= 0:
        return _NO_CAPTURE
    return AttemptCapture(target, settings, execution_id, task_id, attempt)


def forked(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` for a forked child: its output goes to a file the parent's capture reads."""
    current = getattr(_local, "capture", None)
    if current is None:
        return fn
    fd, path = tempfile.mkstemp(prefix="mlw-attempt-log-")
    os.close(fd)
    current.side_file, current.side_pos = path, 0

    def in_child() -> Any:
        current.pending.clear()  # the parent flushes what it had
        _local.capture = current
        current.child_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return fn()

    return in_child


__all__ = ["FLUSH_INTERVAL_S", "AttemptCapture", "capture", "forked"]
