"""How cache values become bytes, and the stored form every backend shares.

Values are pickled with the standard library's pickle, protocol 5, which dumps the values
tasks return faster than cloudpickle (``bench/cache_serialization.py`` compares the two); only
when pickle refuses a value (a lambda, a class defined in a function) does cloudpickle take
over. Both produce ordinary pickles, read by ``pickle.loads``.

>>> entry = new_entry({"accuracy": 0.9}, ttl=60, meta={"task_id": "train"}, now=1000.0)
>>> entry.expires, entry.expired(now=1059.0), entry.expired(now=1060.0)
(1060.0, False, True)
>>> loads(entry.payload)
{'accuracy': 0.9}
"""

from __future__ import annotations

import json
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from mlflowdsl.runtime.cache.base import CacheEntryInfo

PROTOCOL = 5


def dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle  # noqa: PLC0415 - heavy: only for values pickle cannot handle (shipped with Dask)

        return cloudpickle.dumps(value, protocol=PROTOCOL)


def loads(payload: bytes) -> Any:
    return pickle.loads(payload)


@dataclass(frozen=True)
class StoredEntry:
    """A pickled value with its timestamps and metadata (task id/type), as a backend keeps it."""

    payload: bytes
    created: float
    expires: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def remaining_ttl(self, now: float | None = None) -> float | None:
        """Seconds until expiry (``None`` = never), for copying an entry into another layer."""
        if self.expires is None:
            return None
        return self.expires - (time.time() if now is None else now)

    def header(self) -> dict[str, Any]:
        """Everything but the payload, as JSON-able data (written in front of the payload)."""
        return {"created": self.created, "expires": self.expires, "meta": self.meta, "size": len(self.payload)}

    def info(self, key: str, backend: str, size: int | None = None) -> CacheEntryInfo:
        return info_from_header(key, backend, self.header(), len(self.payload) if size is None else size)


def info_from_header(key: str, backend: str, header: dict[str, Any], size: int) -> CacheEntryInfo:
    meta = header.get("meta") or {}
    return CacheEntryInfo(key=key, backend=backend, size=size, created=float(header.get("created") or 0.0),
                          expires=header.get("expires"), task_id=meta.get("task_id"),
                          task_type=meta.get("task_type"))


def new_entry(value: Any, *, ttl: float | None = None, meta: dict | None = None,
              now: float | None = None) -> StoredEntry:
    created = time.time() if now is None else now
    return StoredEntry(payload=dumps(value), created=created,
                       expires=None if ttl is None else created + float(ttl), meta=dict(meta or {}))


def encode_header(entry: StoredEntry) -> bytes:
    # default=str: metadata is informational; an odd value must not make a put fail
    return json.dumps(entry.header(), sort_keys=True, separators=(",", ":"), default=str).encode()


def decode_header(raw: bytes) -> dict[str, Any]:
    """Parse a header; raises ``ValueError`` for anything that is not one."""
    header = json.loads(raw.decode())
    if not isinstance(header, dict) or "created" not in header or "size" not in header:
        raise ValueError("not a cache entry header")
    return header
