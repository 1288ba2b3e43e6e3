"""Fingerprints of the data a task reads: local files, directories and URLs.

A local file's fingerprint is the sha256 of its bytes. Hashing a 400 MB CSV on every
``mlw plan`` is what this module avoids: the digest is remembered in ``<home>/fingerprints.db``
(SQLite) under the file's ``(path, size, mtime_ns, inode)``, so an unchanged file costs one
``stat``. A file modified less than :data:`SETTLE_SECONDS` ago is hashed but not remembered
(a write within the same mtime tick would otherwise go unnoticed). The memo is used only when
``<home>`` exists: a read-only command such as ``mlw plan`` never creates the home.

A URL (any fsspec filesystem: ``s3://``, ``gs://``, ``https://``, ...) is fingerprinted from
the store's metadata (ETag, version id, size, modification time, via fsspec ``info``),
never by downloading it. ``file://`` URLs are local files. Credentials and endpoints come
from the backend's usual configuration (for S3: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mlflowdsl.errors import RuntimeFailure
from mlflowdsl.files import is_url
from mlflowdsl.settings import Settings

log = logging.getLogger(__name__)

MEMO_FILE = "fingerprints.db"
SETTLE_SECONDS = 2.0
# fsspec ``info`` fields that change when a remote object changes (names differ per backend)
REMOTE_FIELDS = ("ETag", "etag", "VersionId", "version_id", "generation", "md5Hash", "crc32c", "Content-MD5",
                 "Digest", "Last-Modified", "LastModified", "last_modified", "mtime", "updated", "size")


def hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_dir(path: str) -> str:
    """sha256 of a directory's file names, sizes and mtimes (not their bytes)."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            st = os.stat(full)
            h.update(f"{os.path.relpath(full, path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Memo:
    """``(path, size, mtime_ns, inode) -> sha256`` in a SQLite file; ``hits`` counts the
    digests served from it (also summed per path in the table, for observing it)."""

    def __init__(self, db: Path):
        self.db = db
        self.hits = 0
        self._lock = threading.Lock()  # one connection, used by whichever thread plans
        self._conn = sqlite3.connect(db, timeout=10, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS memo (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                           " inode INTEGER, digest TEXT NOT NULL, hits INTEGER NOT NULL DEFAULT 0)")

    def get(self, path: str, st: os.stat_result) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT digest FROM memo WHERE path=? AND size=? AND mtime_ns=? AND inode=?",
                                     (path, st.st_size, st.st_mtime_ns, st.st_ino)).fetchone()
            if row is None:
                return None
            self.hits += 1
            self._conn.execute("UPDATE memo SET hits = hits + 1 WHERE path=?", (path,))
            return row[0]

    def put(self, path: str, st: os.stat_result, digest: str) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO memo (path, size, mtime_ns, inode, digest)"
                               " VALUES (?, ?, ?, ?, ?)", (path, st.st_size, st.st_mtime_ns, st.st_ino, digest))

    def close(self) -> None:
        self._conn.close()


class Fingerprinter:
    """``fingerprint(path_or_url) -> str``, with the memo under ``home`` when ``home`` exists
    (``None``: no memo). ``hashed`` counts the local files read in full."""

    def __init__(self, home: Path | None = None):
        self.home = home
        self.hashed = 0
        self._memo: Memo | None = None
        self._memo_tried = False

    def _get_memo(self) -> Memo | None:
        if not self._memo_tried:
            self._memo_tried = True
            if self.home is not None and self.home.is_dir():
                try:
                    self._memo = Memo(self.home / MEMO_FILE)
                except sqlite3.Error as exc:  # an unwritable home: hash every time, as without a memo
                    log.warning("fingerprint memo %s unusable, hashing data files in full: %s",
                                self.home / MEMO_FILE, exc)
        return self._memo

    def __call__(self, path: str) -> str:
        if is_url(path):
            if path.startswith("file://"):
                return self.local(_file_url_path(path))
            return remote_fingerprint(path)
        return self.local(path)

    def local(self, path: str) -> str:
        """sha256 of a file's bytes (remembered); for a directory, :func:`hash_dir`;
        ``missing:<path>`` when absent (the task will say so when it runs)."""
        if os.path.isdir(path):
            return hash_dir(path)
        try:
            st = os.stat(path)
        except OSError:
            return f"missing:{path}"
        memo = self._get_memo()
        if memo is not None:
            try:
                cached = memo.get(path, st)
            except sqlite3.Error as exc:
                log.warning("fingerprint memo lookup failed, hashing %s: %s", path, exc)
                cached = None
            if cached is not None:
                return cached
        digest = hash_file(path)
        self.hashed += 1
        if memo is not None and time.time() - st.st_mtime_ns / 1e9 >= SETTLE_SECONDS:
            try:
                if os.stat(path).st_mtime_ns == st.st_mtime_ns:  # not rewritten while it was hashed
                    memo.put(path, st, digest)
            except (OSError, sqlite3.Error) as exc:
                log.warning("fingerprint of %s not remembered: %s", path, exc)
        return digest

    def close(self) -> None:
        if self._memo is not None:
            self._memo.close()
            self._memo = None
            self._memo_tried = False


def _file_url_path(url: str) -> str:
    from fsspec.implementations.local import LocalFileSystem  # noqa: PLC0415 - fsspec only for URL sources

    return LocalFileSystem._strip_protocol(url)


def remote_metadata(url: str) -> dict[str, Any]:
    """The fields of fsspec ``info(url)`` that identify the object's content."""
    import fsspec  # noqa: PLC0415 - fsspec only for URL sources

    hint_env = "for S3 set AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or ~/.aws)"
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise RuntimeFailure(f"data source {url}: no filesystem for this URL ({exc})",
                             hint="install the fsspec backend for it, e.g. pip install 'mlflowdsl[s3]' for s3://")
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return {}
    except PermissionError as exc:
        raise RuntimeFailure(f"data source {url}: access denied ({exc})", hint=hint_env) from None
    except Exception as exc:  # noqa: BLE001 - a backend's network/auth errors have no common class
        raise RuntimeFailure(f"data source {url}: cannot read its metadata ({type(exc).__name__}: {exc})",
                             hint=f"check that the store is reachable; {hint_env}") from None
    return {k: str(info[k]) for k in REMOTE_FIELDS if info.get(k) not in (None, "")}


def remote_fingerprint(url: str) -> str:
    """sha256 of the URL and its content-identifying metadata; ``missing:<url>`` when the
    object does not exist (the task will say so when it runs)."""
    meta = remote_metadata(url)
    if not meta:
        return f"missing:{url}"
    return hashlib.sha256(json.dumps({"url": url, "meta": meta}, sort_keys=True).encode()).hexdigest()


def fingerprinter(settings: Settings | None) -> Fingerprinter:
    """The fingerprinter for ``settings``' home (without settings: no memo)."""
    return Fingerprinter(settings.home_path if settings is not None else None)
