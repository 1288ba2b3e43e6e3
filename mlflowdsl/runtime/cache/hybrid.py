"""Hybrid cache: memory in front of a shared layer (Redis, or disk when no Redis is configured).

Reads try memory first; a hit in the second layer is promoted to memory (with its remaining
TTL), so the next read in this process does not leave it. Writes go to both layers.
"""

from __future__ import annotations

from itertools import chain
from typing import Iterator

from mlflowdsl.runtime.cache.base import CacheEntryInfo
from mlflowdsl.runtime.cache.memory import MemoryCache
from mlflowdsl.runtime.cache.serialize import StoredEntry
from mlflowdsl.runtime.cache.store import EntryStore


class HybridCache(EntryStore):
    name = "hybrid"

    def __init__(self, front: MemoryCache, back: EntryStore):
        self.front = front
        self.back = back

    def get_entry(self, key: str) -> StoredEntry | None:
        entry = self.front.get_entry(key)
        if entry is not None:
            return entry
        entry = self.back.get_entry(key)
        if entry is not None:
            self.front.put_entry(key, entry)
        return entry

    def put_entry(self, key: str, entry: StoredEntry) -> None:
        self.front.put_entry(key, entry)
        self.back.put_entry(key, entry)

    def contains(self, key: str) -> bool:
        return self.front.contains(key) or self.back.contains(key)

    def delete(self, key: str) -> None:
        self.front.delete(key)
        self.back.delete(key)

    def clear(self) -> int:
        """Entries removed from the shared layer (memory copies are duplicates of those)."""
        self.front.clear()
        return self.back.clear()

    def entries(self) -> Iterator[CacheEntryInfo]:
        return chain(self.front.entries(), self.back.entries())
