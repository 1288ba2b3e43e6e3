"""The part every backend shares: ``get``/``put`` on top of ``get_entry``/``put_entry``.

Backends store :class:`StoredEntry` records (already pickled), so a layered cache moves
bytes between layers without unpickling and re-pickling.
"""

from __future__ import annotations

import abc
import logging
from typing import Any

from mlflowdsl.runtime.cache.serialize import StoredEntry, loads, new_entry

log = logging.getLogger(__name__)


class EntryStore(abc.ABC):
    name = "store"

    @abc.abstractmethod
    def get_entry(self, key: str) -> StoredEntry | None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def put_entry(self, key: str, entry: StoredEntry) -> None:
        """Implemented by each backend."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Implemented by each backend."""

    def get(self, key: str) -> tuple[bool, Any]:
        entry = self.get_entry(key)
        if entry is None:
            return False, None
        try:
            return True, loads(entry.payload)
        except Exception as exc:  # noqa: BLE001 - signature was fine: e.g. a class that no longer imports
            log.warning("cache entry %s (%s) could not be unpickled (%s: %s); deleted, the task will be recomputed",
                        key, self.name, type(exc).__name__, exc)
            self.delete(key)
            return False, None

    def verify(self, key: str) -> bool:
        """Is there an entry whose signature or checksum holds (read whole, never unpickled)?
        A corrupt, forged or expired one is deleted and answers False."""
        return self.get_entry(key) is not None

    def put(self, key: str, value: Any, *, ttl: float | None = None, meta: dict | None = None) -> None:
        entry = new_entry(value, ttl=ttl, meta=meta)
        if not entry.expired():  # ttl <= 0: nothing to keep
            self.put_entry(key, entry)


class NullCache(EntryStore):
    """Strategy ``none``: never hits, stores nothing."""

    name = "none"

    def get_entry(self, key: str) -> StoredEntry | None:
        return None

    def put_entry(self, key: str, entry: StoredEntry) -> None:
        return None

    def put(self, key: str, value: Any, *, ttl: float | None = None, meta: dict | None = None) -> None:
        return None  # not even pickled

    def contains(self, key: str) -> bool:
        return False

    def delete(self, key: str) -> None:
        return None

    def clear(self) -> int:
        return 0

    def entries(self):
        return iter(())
