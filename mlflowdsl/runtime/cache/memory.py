"""Memory cache: a size-bounded LRU of pickled entries, thread-safe, one per process.

It lives in the process that runs the task, i.e. a Dask worker: it saves work within one
run (a result used by several tasks on the same worker, tuning trials) and across runs only
on a long-lived cluster (an embedded cluster is gone when its run ends). Entries are
kept pickled, so the bound is exact and a consumer that mutates a value it got cannot change
what the next consumer gets.

>>> cache = MemoryCache(max_bytes=10_000)
>>> cache.put("k1", [1, 2, 3])
>>> cache.get("k1"), cache.get("k2")
((True, [1, 2, 3]), (False, None))
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Iterator

from mlflowdsl.runtime.cache.base import CacheEntryInfo
from mlflowdsl.runtime.cache.store import EntryStore
from mlflowdsl.runtime.cache.serialize import StoredEntry

log = logging.getLogger(__name__)


class MemoryCache(EntryStore):
    name = "memory"

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[str, StoredEntry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def get_entry(self, key: str) -> StoredEntry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expired():
                self._remove(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def put_entry(self, key: str, entry: StoredEntry) -> None:
        size = len(entry.payload)
        with self._lock:
            self._remove(key)
            if size > self.max_bytes:
                log.debug("not caching %s in memory: %d bytes exceed the %d-byte budget", key, size, self.max_bytes)
                return
            self._entries[key] = entry
            self._bytes += size
            while self._bytes > self.max_bytes:  # least recently used first
                self._remove(next(iter(self._entries)))

    def contains(self, key: str) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            return entry is not None and not entry.expired()

    def delete(self, key: str) -> None:
        with self._lock:
            self._remove(key)

    def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._bytes = 0
            return count

    def entries(self) -> Iterator[CacheEntryInfo]:
        with self._lock:
            snapshot = list(self._entries.items())
        return iter([entry.info(key, self.name) for key, entry in snapshot if not entry.expired()])

    def _remove(self, key: str) -> None:  # caller holds the lock
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.payload)
