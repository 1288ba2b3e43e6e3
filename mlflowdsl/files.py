"""Atomic file writes shared by the runtime and the task plug-ins.

A reader of a path written here sees the old file or the new one, never a part of it:
the bytes go to a temporary file beside the target, are fsynced, and are renamed onto it.

>>> import os, tempfile
>>> target = os.path.join(tempfile.mkdtemp(), "out", "result.bin")
>>> atomic_write_bytes(target, b"ok")
>>> open(target, "rb").read()
b'ok'
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` would briefly set it for
    every thread of a Dask worker)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError as exc:
        log.debug("cannot read the umask from /proc (%s); assuming 022", exc)
    return 0o022


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto
    ``path`` (atomic on POSIX), on error removed."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file 0600; a result file gets the usual mode (0666 minus umask).
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
