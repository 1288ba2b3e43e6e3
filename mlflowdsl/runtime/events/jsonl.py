"""The embedded event backend: one JSON object per line, appended to ``<home>/events.jsonl``.

``emit`` puts the event into a bounded queue and returns; a daemon thread appends batches
to the file. When the queue is full (the disk is slower than the run) the oldest event is
dropped and counted, so a workflow never waits for its events. Write errors (a read-only
home, a full disk) are counted as drops and reported once as a warning.
"""

from __future__ import annotations

import collections
import logging
import threading
from pathlib import Path

from mlflowdsl.runtime.events.base import Event, EventBus

log = logging.getLogger(__name__)


class JsonlBus(EventBus):
    def __init__(self, path: str | Path, *, capacity: int = 10_000):
        self.path = Path(path)
        self.capacity = capacity
        self.emitted = 0
        self.dropped = 0
        self.written = 0
        self._buffer: collections.deque[Event] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._warned = False
        self._thread = threading.Thread(target=self._drain, name="mlw-events-jsonl", daemon=True)
        self._thread.start()

    def emit(self, event: Event) -> None:
        try:
            with self._cond:
                self.emitted += 1
                if self._closed:
                    self.dropped += 1
                    return
                if len(self._buffer) >= self.capacity:
                    self._buffer.popleft()
                    self.dropped += 1
                self._buffer.append(event)
                self._cond.notify()
        except Exception:  # pragma: no cover - emit must never raise into a workflow
            self.dropped += 1

    def _drain(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._closed:
                    self._cond.wait()
                if not self._buffer and self._closed:
                    return
                batch = list(self._buffer)
                self._buffer.clear()
            self._write(batch)
            with self._cond:
                self._cond.notify_all()

    def _write(self, batch: list[Event]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = "".join(e.model_dump_json() + "\n" for e in batch)
            # One write per batch in append mode: lines from concurrent runs do not interleave
            # mid-line for writes below the pipe/page size, and rarely do otherwise.
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text)
            with self._cond:
                self.written += len(batch)
        except OSError as exc:
            with self._cond:
                self.dropped += len(batch)
            if not self._warned:
                self._warned = True
                log.warning("events could not be written to %s (%s); dropping them", self.path, exc)

    def flush(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.written + self.dropped >= self.emitted, timeout=timeout)

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)
