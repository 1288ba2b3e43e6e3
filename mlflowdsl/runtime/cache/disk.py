"""Disk cache: one signed file per entry under ``settings.cache_path``.

Layout: ``<root>/ab/abcdef….entry`` (sharded by the key's first two characters). A file is

    magic "MLWCACHE" | version u16 | header length u32 | HMAC-SHA256 (32 bytes) | header JSON | payload

where the HMAC (the key of ``hmac_key.cache_hmac_key``, the one Redis entries are signed with)
covers the entry's cache key, the version, the header JSON and the payload. A flipped or
missing byte anywhere is caught, and so is an entry written by someone without the key (a
forged pickle in a shared cache directory) or copied from another key: such files are never
unpickled. Writes go to a temporary file in the same directory, are fsynced and renamed over the
entry (``os.replace``, atomic): a reader sees the old entry or the new one, never a part, and
several processes writing one key at once all complete (the last rename wins). A corrupt or
truncated entry is logged, deleted and reported as a miss, so the task is recomputed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import struct
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from mlflowdsl.runtime.cache.base import CacheEntryInfo
from mlflowdsl.runtime.cache.serialize import StoredEntry, decode_header, encode_header, info_from_header
from mlflowdsl.runtime.cache.store import EntryStore

log = logging.getLogger(__name__)

MAGIC = b"MLWCACHE"
VERSION = 2  # 1 was checksummed with a plain sha256: such files are refused (unsigned) and recomputed
PREFIX = struct.Struct(">8sHI32s")  # magic, version, header length, HMAC-SHA256
SUFFIX = ".entry"
TMP_SUFFIX = ".tmp"
_KEY = re.compile(r"^[A-Za-z0-9_-]{2,200}\Z")  # also keeps keys from escaping the cache dir


class CorruptEntry(ValueError):
    pass


def _mac(secret: bytes, key: str, header_len: int, body) -> bytes:
    mac = hmac.new(secret, key.encode() + b"\n", hashlib.sha256)
    mac.update(struct.pack(">HI", VERSION, header_len))
    mac.update(body)
    return mac.digest()


def encode_entry(entry: StoredEntry, secret: bytes, key: str) -> bytes:
    header = encode_header(entry)
    body = header + entry.payload
    return PREFIX.pack(MAGIC, VERSION, len(header), _mac(secret, key, len(header), body)) + body


def _split_prefix(data: bytes) -> tuple[int, bytes]:
    if len(data) < PREFIX.size:
        raise CorruptEntry(f"truncated: {len(data)} bytes")
    magic, version, header_len, digest = PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CorruptEntry("bad magic")
    if version != VERSION:
        raise CorruptEntry(f"unsigned or unknown format version {version}")
    return header_len, digest


def decode_entry(data: bytes, secret: bytes, key: str) -> StoredEntry:
    """Check the signature and parse a whole entry file; raises :class:`CorruptEntry`. Never
    unpickles.

    >>> from mlflowdsl.runtime.cache.serialize import new_entry
    >>> blob = encode_entry(new_entry("v", now=1.0), b"secret", "k1")
    >>> decode_entry(blob, b"secret", "k1").created
    1.0
    >>> decode_entry(blob[:-1], b"secret", "k1")
    Traceback (most recent call last):
    ...
    mlflowdsl.runtime.cache.disk.CorruptEntry: bad signature
    >>> decode_entry(blob, b"another key", "k1")
    Traceback (most recent call last):
    ...
    mlflowdsl.runtime.cache.disk.CorruptEntry: bad signature
    """
    header_len, digest = _split_prefix(data)
    body = memoryview(data)[PREFIX.size:]
    if not hmac.compare_digest(_mac(secret, key, header_len, body), digest):
        raise CorruptEntry("bad signature")
    try:
        header = decode_header(bytes(body[:header_len]))
    except ValueError as exc:  # checksum matched a writer's bug; still not usable
        raise CorruptEntry(f"bad header: {exc}") from None
    payload = bytes(body[header_len:])
    if len(payload) != header["size"]:
        raise CorruptEntry("payload size mismatch")
    return StoredEntry(payload=payload, created=float(header["created"]), expires=header.get("expires"),
                       meta=header.get("meta") or {})


Secret = bytes | Callable[[], bytes] | None


class DiskCache(EntryStore):
    name = "disk"

    def __init__(self, root: str | os.PathLike, secret: Secret = None,
                 existing: Callable[[], bytes | None] | None = None):
        """``secret``: the signing key, or a function returning it (called at the first read
        or write, so listing a cache never creates a key file); ``existing``: a function
        returning the key only if it already exists, used by :meth:`verify` (planning, also
        in read-only ``mlw plan``). ``None`` makes an admin handle (``mlw cache ls|clear``)
        that lists and deletes entries but refuses to read or write them."""
        self.root = Path(root)
        self._secret = secret
        self._existing = existing

    def _key(self) -> bytes:
        if callable(self._secret):
            self._secret = self._secret()
        if self._secret is None:
            raise RuntimeError("this DiskCache has no signing key: it can only list and delete entries")
        return self._secret

    def verify(self, key: str) -> bool:
        if self._existing is not None and callable(self._secret):  # no key yet: check without making one
            existing = self._existing()
            if existing is None:
                return False  # nothing can be validly signed before the key exists
            self._secret = existing
        return super().verify(key)

    def path_for(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"invalid cache key {key!r}: use letters, digits, '_' and '-' only")
        return self.root / key[:2] / f"{key}{SUFFIX}"

    # ---------------------------------------------------------------- reading

    def get_entry(self, key: str) -> StoredEntry | None:
        path = self.path_for(key)
        secret = self._key()
        try:
            with open(path, "rb") as f:
                data = f.read()
                stat = os.fstat(f.fileno())
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cache entry %s unreadable (%s); treating it as a miss", path, exc)
            return None
        try:
            entry = decode_entry(data, secret, key)
        except CorruptEntry as exc:
            log.warning("corrupt or unsigned cache entry %s (%s): deleted without unpickling, the task will be "
                        "recomputed; if several machines share this cache, give them the same MLW_CACHE_HMAC_KEY",
                        path, exc)
            self._drop_if_unchanged(path, stat)
            return None
        if entry.expired():
            self._drop_if_unchanged(path, stat)
            return None
        return entry

    def read_header(self, path: Path) -> tuple[dict, int] | None:
        """The header and file size of an entry, without reading or checking its payload."""
        try:
            with open(path, "rb") as f:
                head = f.read(PREFIX.size)
                header_len, _ = _split_prefix(head)
                header = decode_header(f.read(header_len))
                size = os.fstat(f.fileno()).st_size
        except (OSError, ValueError):
            return None
        return header, size

    def contains(self, key: str) -> bool:
        found = self.read_header(self.path_for(key))
        if found is None:
            return False
        expires = found[0].get("expires")
        return expires is None or time.time() < expires

    def entries(self) -> Iterator[CacheEntryInfo]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob(f"*/*{SUFFIX}")):
            found = self.read_header(path)
            if found is not None:
                header, size = found
                yield info_from_header(path.name[: -len(SUFFIX)], self.name, header, size)

    # ---------------------------------------------------------------- writing

    def put_entry(self, key: str, entry: StoredEntry) -> None:
        path = self.path_for(key)
        data = encode_entry(entry, self._key(), key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=TMP_SUFFIX)
        except OSError as exc:
            log.warning("cannot write cache entry %s (%s); result not cached", path, exc)
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write cache entry %s (%s); result not cached", path, exc)
            _unlink(Path(tmp))
            return
        # No fsync of the directory: it would double the cost of a put, and a rename lost in a
        # power cut only turns this entry into a miss.

    def delete(self, key: str) -> None:
        _unlink(self.path_for(key))

    def clear(self) -> int:
        count = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.glob(f"*/*{SUFFIX}"):
            count += _unlink(path)
        for path in self.root.glob(f"*/.*{TMP_SUFFIX}"):  # left by writers that were killed
            _unlink(path)
        return count

    def _drop_if_unchanged(self, path: Path, stat: os.stat_result) -> None:
        """Delete ``path`` only if it is still the file we read: a concurrent writer may have
        just renamed a good entry over the bad one."""
        try:
            now = os.stat(path)
        except FileNotFoundError:
            return
        if (now.st_ino, now.st_dev) == (stat.st_ino, stat.st_dev):
            _unlink(path)


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0

