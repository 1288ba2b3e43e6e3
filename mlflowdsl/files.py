"""Atomic file writes shared by the runtime and the task plug-ins, and bounded reads of
source files.

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
import errno
import logging
import os
import re
import stat
import tempfile
from typing import Iterator

log = logging.getLogger(__name__)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(value: object) -> bool:
    """Whether ``value`` names data by URL (``s3://b/k``, ``https://h/p``, ``file:///p``) rather
    than by a local path; ``sklearn:iris`` and ``models:/m@a`` are not URLs.

    >>> [is_url(v) for v in ("s3://b/k.csv", "https://h/x.csv", "file:///d/x.csv", "data/x.csv", "sklearn:iris")]
    [True, True, True, False, False]
    """
    return isinstance(value, str) and bool(_URL.match(value))


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


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: str, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, read only if it holds at most ``max_bytes``.

    Anything else raises ``OSError`` whose ``strerror`` says what the path is: a device
    (``/dev/zero``), a FIFO or ``/dev/stdin`` is refused without reading or blocking (the file
    is opened non-blocking and checked with ``fstat`` before a byte is read), a larger file is
    refused by its size, and a path with a NUL byte cannot name a file at all.

    >>> read_regular_file("/dev/zero", 10)
    Traceback (most recent call last):
    ...
    OSError: [Errno 22] not a regular file (a character device): '/dev/zero'
    """
    if "\x00" in path:
        raise OSError(errno.EINVAL, "the path contains a NUL byte", path.replace("\x00", "\\0"))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS if test(info.st_mode)), "not a file")
            raise OSError(errno.EINVAL, f"not a regular file ({kind})", path)
        if info.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"the file holds {info.st_size} bytes, more than the limit of {max_bytes}", path)
        chunks, total = [], 0
        while True:  # a file that grows while it is read stops at the limit too
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise OSError(errno.EFBIG, f"the file holds more than the limit of {max_bytes} bytes", path)
        return b"".join(chunks)
    finally:
        os.close(fd)
