"""The cache interface shared by the five strategies (``ir.CacheStrategy``).

Keys are content addresses (hex sha256 strings, see ``cache_key``). Values are any
picklable objects (a task's ``TaskOutputs``). ``open_cache`` in ``mlflowdsl.runtime.cache``
returns the backend for a strategy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.canonical_json import compact

class CacheUnavailable(RuntimeFailure):
    """A cache backend cannot be reached for an operation the user asked for directly
    (``mlw cache ls|clear``). Task-time reads and writes never raise it: they degrade to misses."""


@dataclass(frozen=True)
class CacheEntryInfo:
    key: str
    backend: str  # "memory" | "disk" | "redis"
    size: int  # bytes
    created: float  # unix time
    expires: float | None
    task_id: str | None = None
    task_type: str | None = None


class CacheBackend(Protocol):
    name: str

    def get(self, key: str) -> tuple[bool, Any]:
        """``(True, value)`` on a hit, ``(False, None)`` on a miss. A corrupt, expired,
        unsigned or tampered entry is a miss (and is dropped)."""

    def contains(self, key: str) -> bool:
        """Cheap existence check (no unpickling); may be optimistic for corrupt entries."""

    def verify(self, key: str) -> bool:
        """Existence with the entry's signature checked (the whole entry is read, never
        unpickled); a corrupt or forged entry is deleted and answers False."""

    def put(self, key: str, value: Any, *, ttl: float | None = None, meta: dict | None = None) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""

    def entries(self) -> Iterable[CacheEntryInfo]: ...


def cache_key(key_part: str, input_keys: Iterable[str] = (), data_fingerprints: Iterable[str] = ()) -> str:
    """The full cache key of a task: its static ``key_part`` (type, implementation version,
    resolved params, cache version) plus the keys of its inputs (in dependency order) and the
    fingerprints of files it reads."""
    body = compact({"part": key_part, "inputs": list(input_keys), "data": list(data_fingerprints)})
    return hashlib.sha256(body.encode()).hexdigest()
