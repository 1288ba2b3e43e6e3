"""What ``mlw cache ls|clear`` does, as plain functions over the shared layers.

The shared layers are disk (``settings.cache_path``) and, when ``settings.redis_url`` is set,
Redis. Memory caches live inside worker processes and cannot be seen from outside.

>>> parse_age("7d"), parse_age("90m"), parse_age("45")
(604800.0, 5400.0, 45.0)
>>> human_size(1536), human_age(5400)
('1.5 KiB', '1h30m')
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from mlflowdsl.runtime.cache.base import CacheEntryInfo
from mlflowdsl.runtime.cache.disk import DiskCache
from mlflowdsl.runtime.cache.redis_cache import RedisCache, safe_url
from mlflowdsl.settings import Settings

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_age(text: str) -> float:
    """``"7d"`` -> seconds; units s, m, h, d, w (none = seconds). ``ValueError`` otherwise."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number with s, m, h, d or w (e.g. 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


@dataclass(frozen=True)
class Layer:
    name: str  # "disk" | "redis"
    location: str
    store: object


def shared_layers(settings: Settings) -> list[Layer]:
    layers = [Layer("disk", str(settings.cache_path), DiskCache(os.path.abspath(settings.cache_path)))]
    if settings.redis_url:
        # no signing key: listing and deleting never read a payload (and must not create a key file)
        store = RedisCache(settings.redis_url, secret=None, prefix=settings.key_prefix, retry_after=0.0)
        layers.append(Layer("redis", safe_url(settings.redis_url), store))
    return layers


def list_entries(layers: list[Layer]) -> list[CacheEntryInfo]:
    """Every entry of the layers, newest first."""
    found: list[CacheEntryInfo] = []
    for layer in layers:
        found.extend(layer.store.entries())
    return sorted(found, key=lambda e: (-e.created, e.backend, e.key))


def clear_entries(layers: list[Layer], older_than: float | None = None, now: float | None = None) -> dict[str, int]:
    """Remove entries (only those created more than ``older_than`` seconds ago, if given);
    returns how many were removed per layer."""
    removed: dict[str, int] = {}
    for layer in layers:
        if older_than is None:
            removed[layer.name] = layer.store.clear()
            continue
        cutoff = (time.time() if now is None else now) - older_than
        old = [e.key for e in layer.store.entries() if e.created < cutoff]
        for key in old:
            layer.store.delete(key)
        removed[layer.name] = len(old)
    return removed


def entry_record(entry: CacheEntryInfo, now: float) -> dict:
    return {"key": entry.key, "backend": entry.backend, "task_id": entry.task_id, "task_type": entry.task_type,
            "size": entry.size, "created": entry.created, "age_s": round(now - entry.created, 3) if entry.created else None,
            "expires": entry.expires}
