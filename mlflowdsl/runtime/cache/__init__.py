"""The result cache: ``open_cache(strategy, settings)`` returns a backend.

=========  ==================================================================================
none       never hits, stores nothing
memory     size-bounded LRU in the process running the task (a Dask worker); helps within a
           run, and across runs only on a long-lived cluster
disk       signed files under ``settings.cache_path`` (default ``<home>/cache``)
redis      signed entries with TTL in ``settings.redis_url`` (needs ``MLW_REDIS_URL``)
hybrid     memory in front of redis, or of disk when no Redis is configured
=========  ==================================================================================

Backends are made once per process and settings (so a worker's memory layer is shared by
every task it runs). Importing this package does not import redis: ``RedisCache`` imports it
when one is made.

>>> from mlflowdsl.settings import Settings
>>> open_cache("none", Settings()).get("0" * 64)
(False, None)
"""

from __future__ import annotations

import os
import threading
from typing import Any

from mlflowdsl.errors import ConfigError
from mlflowdsl.ir import CACHE_OFF, CACHE_STRATEGIES
from mlflowdsl.runtime.cache.base import CacheBackend, CacheEntryInfo, CacheUnavailable, cache_key
from mlflowdsl.runtime.cache.disk import DiskCache
from mlflowdsl.runtime.cache.hmac_key import cache_hmac_key, existing_cache_hmac_key
from mlflowdsl.runtime.cache.hybrid import HybridCache
from mlflowdsl.runtime.cache.memory import MemoryCache
from mlflowdsl.runtime.cache.redis_cache import RedisCache
from mlflowdsl.runtime.cache.store import NullCache

__all__ = ["open_cache", "open_layer", "reset_open_caches", "cache_key", "CacheBackend", "CacheEntryInfo",
           "CacheUnavailable", "DiskCache", "MemoryCache", "HybridCache", "NullCache"]

_OPEN: dict[tuple, Any] = {}
_LOCK = threading.RLock()


def open_cache(strategy: str, settings) -> CacheBackend:
    """The backend for ``strategy`` under ``settings``, memoized per process."""
    if strategy not in CACHE_STRATEGIES:
        raise ConfigError(f"unknown cache strategy {strategy!r}", subject="cache.strategy",
                          hint=f"use one of: {', '.join(CACHE_STRATEGIES)}")
    if strategy == CACHE_OFF:
        return NullCache()
    if strategy == "hybrid":
        back = open_layer("redis" if settings.redis_url else "disk", settings)
        return _memo(("hybrid", _settings_key(settings)), lambda: HybridCache(open_layer("memory", settings), back))
    return open_layer(strategy, settings)


def open_layer(layer: str, settings) -> Any:
    """One plain layer (``memory``, ``disk`` or ``redis``), shared by every strategy that uses it."""
    if layer == "memory":
        return _memo(("memory", settings.memory_cache_bytes), lambda: MemoryCache(settings.memory_cache_bytes))
    if layer == "disk":
        root = os.path.abspath(settings.cache_path)
        return _memo(("disk", root, settings.cache_hmac_key, os.path.abspath(settings.home)),
                     lambda: DiskCache(root, secret=lambda: cache_hmac_key(settings),
                                       existing=lambda: existing_cache_hmac_key(settings)))
    if layer == "redis":
        if not settings.redis_url:
            raise ConfigError("cache strategy 'redis' needs a Redis server, but none is configured",
                              subject="MLW_REDIS_URL / --redis",
                              hint="set MLW_REDIS_URL=redis://HOST:6379/0 (or pass --redis URL), "
                                   "or use cache strategy 'disk' or 'hybrid'")
        return _memo(("redis", settings.redis_url, settings.key_prefix, settings.cache_hmac_key,
                      os.path.abspath(settings.home)),
                     lambda: RedisCache(settings.redis_url, secret=cache_hmac_key(settings), prefix=settings.key_prefix))
    raise ValueError(f"unknown cache layer {layer!r}")


def reset_open_caches() -> None:
    """Forget memoized backends (tests; a process that changed its settings)."""
    with _LOCK:
        for backend in _OPEN.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()
        _OPEN.clear()


def _settings_key(settings) -> tuple:
    # Settings holds a dict (``extra``) and so cannot be hashed itself.
    return (os.path.abspath(settings.cache_path), settings.redis_url, settings.cache_hmac_key,
            settings.home, settings.memory_cache_bytes, settings.key_prefix)


def _memo(key: tuple, make) -> Any:
    key = (os.getpid(),) + key  # a forked child must not share its parent's sockets or locks
    with _LOCK:
        backend = _OPEN.get(key)
        if backend is None:
            backend = _OPEN[key] = make()
        return backend
