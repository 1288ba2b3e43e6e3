"""Redis cache: entries ``{prefix}:cache:{key}`` with a TTL, signed with HMAC-SHA256.

A shared Redis must not be able to make a worker unpickle bytes it did not write (unpickling
runs code). Every value is

    magic "MLWR" | version u8 | HMAC-SHA256 (32 bytes) | header length u32 | header JSON | payload

where the HMAC covers the Redis key name and everything after the MAC (so an entry cannot be
replayed under another key either) and is checked with ``hmac.compare_digest`` BEFORE anything
is unpickled. An unsigned or tampered entry is a miss: it is deleted and a warning is logged.

Redis being unreachable never fails a task: reads are misses and writes are skipped, with one
warning per outage; for ``retry_after`` seconds after a failure the server is not even tried,
so a run does not wait out a connect timeout per task. ``clear``/``entries`` (the CLI) raise
:class:`CacheUnavailable` instead, so the user hears about it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
import threading
import time
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

from mlflowdsl.errors import ConfigError
from mlflowdsl.runtime.cache.base import CacheEntryInfo, CacheUnavailable
from mlflowdsl.runtime.cache.serialize import StoredEntry, decode_header, encode_header, info_from_header
from mlflowdsl.runtime.cache.store import EntryStore

log = logging.getLogger(__name__)

MAGIC = b"MLWR"
VERSION = 1
PREFIX = struct.Struct(">4sB32sI")  # magic, version, mac, header length
HEADER_PEEK = 4096  # bytes fetched to list an entry without its payload


class InvalidSignature(ValueError):
    pass


def sign_entry(secret: bytes, redis_key: str, entry: StoredEntry) -> bytes:
    header = encode_header(entry)
    mac = _mac(secret, redis_key, struct.pack(">BI", VERSION, len(header)), header, entry.payload)
    return PREFIX.pack(MAGIC, VERSION, mac, len(header)) + header + entry.payload


def verify_entry(secret: bytes, redis_key: str, blob: bytes) -> StoredEntry:
    """Check the signature, then parse. Raises :class:`InvalidSignature`; never unpickles.

    >>> from mlflowdsl.runtime.cache.serialize import new_entry
    >>> blob = sign_entry(b"k", "mlw:cache:a", new_entry(1, now=5.0))
    >>> verify_entry(b"k", "mlw:cache:a", blob).created
    5.0
    >>> verify_entry(b"k", "mlw:cache:b", blob)
    Traceback (most recent call last):
    ...
    mlflowdsl.runtime.cache.redis_cache.InvalidSignature: bad signature
    """
    if len(blob) < PREFIX.size:
        raise InvalidSignature("unsigned (too short)")
    magic, version, mac, header_len = PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise InvalidSignature("unsigned (no mlw signature)")
    if version != VERSION:
        raise InvalidSignature(f"unknown format version {version}")
    body = memoryview(blob)[PREFIX.size:]
    expected = _mac(secret, redis_key, struct.pack(">BI", version, header_len), body)
    if not hmac.compare_digest(mac, expected):
        raise InvalidSignature("bad signature")
    try:
        header = decode_header(bytes(body[:header_len]))
    except ValueError as exc:
        raise InvalidSignature(f"bad header: {exc}") from None
    payload = bytes(body[header_len:])
    return StoredEntry(payload=payload, created=float(header["created"]), expires=header.get("expires"),
                       meta=header.get("meta") or {})


def _mac(secret: bytes, redis_key: str, *parts: Any) -> bytes:
    mac = hmac.new(secret, redis_key.encode() + b"\n", hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def peek_header(blob: bytes) -> dict | None:
    """The header of a (possibly partial) entry, for listings only: not verified, never unpickled."""
    try:
        magic, _, _, header_len = PREFIX.unpack_from(blob)
        if magic != MAGIC:
            return None
        return decode_header(blob[PREFIX.size:PREFIX.size + header_len])
    except (struct.error, ValueError):
        return None


class RedisCache(EntryStore):
    name = "redis"

    def __init__(self, url: str, *, secret: bytes | None, prefix: str = "mlw", retry_after: float = 2.0,
                 connect_timeout: float = 1.0, socket_timeout: float = 30.0):
        """``secret=None`` makes an admin handle (``mlw cache ls|clear``) that can list and
        delete entries but refuses to read or write them."""
        import redis  # noqa: PLC0415 - heavy: redis only when a Redis cache is opened

        self.url = url
        self.prefix = prefix
        self._secret = secret
        self._errors = (redis.RedisError, OSError)
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=connect_timeout,
                                                socket_timeout=socket_timeout)
        except ValueError as exc:
            raise ConfigError(f"invalid Redis URL {url!r}: {exc}", subject="MLW_REDIS_URL / --redis",
                              hint="use redis://HOST:PORT/DB (or rediss:// for TLS)") from None
        self._retry_after = retry_after
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    def redis_key(self, key: str) -> str:
        return f"{self.prefix}:cache:{key}"

    # ------------------------------------------------------------- availability

    def _call(self, what: str, fn, default):
        """Run one Redis call; on a connection problem log (once per outage) and return ``default``."""
        if self._down and time.monotonic() < self._down_until:
            return default
        try:
            result = fn()
        except self._errors as exc:
            with self._lock:
                if not self._down:
                    log.warning("redis cache at %s unreachable during %s (%s); continuing without it",
                                safe_url(self.url), what, exc)
                self._down = True
                self._down_until = time.monotonic() + self._retry_after
            return default
        if self._down:
            with self._lock:
                self._down = False
            log.info("redis cache at %s is reachable again", safe_url(self.url))
        return result

    def _call_or_raise(self, what: str, fn):
        try:
            return fn()
        except self._errors as exc:
            raise CacheUnavailable(f"cannot {what}: {exc}", subject=safe_url(self.url),
                                   hint="check that Redis is running and the URL (MLW_REDIS_URL / --redis) is right") from None

    # ------------------------------------------------------------- entries

    def _require_secret(self) -> bytes:
        if self._secret is None:
            raise RuntimeError("this RedisCache has no signing key: it can only list and delete entries")
        return self._secret

    def get_entry(self, key: str) -> StoredEntry | None:
        secret = self._require_secret()
        rkey = self.redis_key(key)
        blob = self._call("get", lambda: self._client.get(rkey), None)
        if blob is None:
            return None
        try:
            entry = verify_entry(secret, rkey, blob)
        except InvalidSignature as exc:
            log.warning("rejected redis cache entry %s (%s): deleted without unpickling; if every "
                        "instance should share entries, give them the same MLW_CACHE_HMAC_KEY", rkey, exc)
            self._call("delete", lambda: self._client.delete(rkey), None)
            return None
        return None if entry.expired() else entry

    def put_entry(self, key: str, entry: StoredEntry) -> None:
        rkey = self.redis_key(key)
        ttl = entry.remaining_ttl()
        if ttl is not None and ttl <= 0:
            return
        blob = sign_entry(self._require_secret(), rkey, entry)
        px = None if ttl is None else max(1, int(ttl * 1000))
        self._call("put", lambda: self._client.set(rkey, blob, px=px), None)

    def contains(self, key: str) -> bool:
        return bool(self._call("contains", lambda: self._client.exists(self.redis_key(key)), 0))

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self._client.delete(self.redis_key(key)), None)

    def _scan_keys(self) -> list[bytes]:
        return list(self._client.scan_iter(match=f"{self.prefix}:cache:*", count=1000))

    def clear(self) -> int:
        def run() -> int:
            keys = self._scan_keys()
            removed = 0
            for i in range(0, len(keys), 500):
                removed += self._client.unlink(*keys[i:i + 500])
            return removed

        return self._call_or_raise("clear the redis cache", run)

    def entries(self) -> Iterator[CacheEntryInfo]:
        def run() -> list[CacheEntryInfo]:
            keys = self._scan_keys()
            pipe = self._client.pipeline(transaction=False)
            for rkey in keys:
                pipe.getrange(rkey, 0, HEADER_PEEK - 1)
                pipe.strlen(rkey)
            replies = pipe.execute() if keys else []
            start = len(self.prefix) + len(":cache:")
            infos = []
            for rkey, head, size in zip(keys, replies[0::2], replies[1::2]):
                if not head:  # expired between SCAN and GETRANGE
                    continue
                header = peek_header(head)
                if header is None and len(head) >= HEADER_PEEK:  # a very long header: fetch it all
                    header = peek_header(self._client.get(rkey) or b"")
                key = rkey.decode()[start:]
                if header is None:  # unsigned/foreign value: listed so that it can be seen and cleared
                    infos.append(CacheEntryInfo(key=key, backend=self.name, size=size, created=0.0, expires=None))
                else:
                    infos.append(info_from_header(key, self.name, header, size))
            return infos

        return iter(self._call_or_raise("list the redis cache", run))

    def close(self) -> None:
        self._client.close()


def safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
